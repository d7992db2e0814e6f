"""Per-pass time of Direct's kvec engine, im2col, im2col's pointwise engine,
auto and torch on 1x1 layers (MobileNetV2's and ResNet-50's at batch 8, a
few at batch 1); min of 5 back-to-back calls. From the repository root:
    PYTHONPATH=python python bench/results/cpu-2026-12-08-depthwise/engines_1x1.py [N,C,H,K ...]"""
import sys, time
import torch
from convbench import _launch as L
def tm(f, reps=5):
    f(); ts=[]
    for _ in range(reps):
        t0=time.perf_counter(); f(); ts.append(time.perf_counter()-t0)
    return min(ts)*1e3
ENG=[("kvec","direct",2),("gemm","im2col",1),("pointwise","im2col",2),("auto","auto",0)]
shapes=[(8,160,4,960),(8,320,4,1280),(8,16,56,96),(8,960,4,320),(8,576,7,96),(8,64,7,384),(8,24,28,144),(8,144,28,24),(8,192,14,32),(8,512,28,128),(8,256,56,64),(1,960,7,160),(1,32,112,16),(1,96,56,24)]
if len(sys.argv)>1: shapes=[tuple(int(v) for v in a.split(",")) for a in sys.argv[1:]]
for N,C,H,K in shapes:
    x=torch.randn(N,C,H,H); w=torch.randn(K,C,1,1); dy=torch.randn(N,K,H,H)
    st,pd,dl=(1,1),(0,0,0,0),(1,1)
    line=f"N{N} C{C} {H}px K{K}:"
    for pname in ("fwd","bin","bw"):
        res={}
        for name,a,e in ENG:
            if pname=="fwd": f=lambda: L.conv2d_forward(x,w,None,(H,H),st,pd,dl,1,a,e)
            elif pname=="bin": f=lambda: L.conv2d_backward_input(dy,w,x.shape,st,pd,dl,1,a,e)
            else: f=lambda: L.conv2d_backward_weight(dy,x,w.shape,st,pd,dl,1,a,e)
            res[name]=tm(f)
        mask=[pname=="bin",pname=="bw",False]
        tf=(lambda: torch.ops.aten.convolution_backward(dy,x,w,None,st,(0,0),dl,False,(0,0),1,mask)) if pname!="fwd" else (lambda: torch.nn.functional.conv2d(x,w,None,st,0,dl,1))
        res["torch"]=tm(tf)
        line+=f" | {pname} "+" ".join(f"{k}={v:.2f}" for k,v in res.items())
    print(line, flush=True)
