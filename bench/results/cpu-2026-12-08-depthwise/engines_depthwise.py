"""Per-pass time of each CPU engine and of torch on depthwise and grouped
layers (min of 7 back-to-back calls each; convbench's private launch layer,
which names engines). Run from the repository root after a dev build:
    PYTHONPATH=python python bench/results/cpu-2026-12-08-depthwise/engines_depthwise.py"""
import time
import torch
from convbench import _launch as L
torch.manual_seed(0)
def cases():
    for N,C,H,s,m,g in [(8,32,112,1,1,None),(8,144,56,2,1,None),(8,384,14,1,1,None),(1,384,14,1,1,None),(8,96,56,2,1,None),(8,32,56,1,2,None),(8,64,28,1,1,None),
                        (8,128,28,1,1,32),(8,64,28,1,1,16),(8,128,28,1,1,64)]:
        yield N,C,H,s,m,(g or C)
def tm(f, reps=7):
    f(); ts=[]
    for _ in range(reps):
        t0=time.perf_counter(); f(); ts.append(time.perf_counter()-t0)
    return min(ts)*1e3
ENG = [("flat",1,1),("kvec",1,2),("depthwise",1,3),("gemm",2,1),("auto",0,0)]
for N,C,H,s,m,G in cases():
    K=C*m if G==C else C
    x=torch.randn(N,C,H,H); w=torch.randn(K,C//G,3,3)
    P=(H+2-3)//s+1; dy=torch.randn(N,K,P,P)
    st,pd,dl=(s,s),(1,1,1,1),(1,1)
    line=f"N{N} C{C} K{K} g{G} {H}px s{s}:"
    for pname in ("fwd","bin","bw"):
        res={}
        for name,a,e in ENG:
            algo={0:"auto",1:"direct",2:"im2col"}[a]
            if pname=="fwd": f=lambda: L.conv2d_forward(x,w,None,(P,P),st,pd,dl,G,algo,e)
            elif pname=="bin": f=lambda: L.conv2d_backward_input(dy,w,x.shape,st,pd,dl,G,algo,e)
            else: f=lambda: L.conv2d_backward_weight(dy,x,w.shape,st,pd,dl,G,algo,e)
            res[name]=tm(f)
        mask=[pname=="bin",pname=="bw",False]
        tf=lambda: torch.ops.aten.convolution_backward(dy,x,w,None,st,(1,1),dl,False,(0,0),G,mask) if pname!="fwd" else torch.nn.functional.conv2d(x,w,None,st,1,dl,G)
        res["torch"]=tm(tf)
        line+=f" | {pname} "+" ".join(f"{k}={v:.2f}" for k,v in res.items())
    print(line, flush=True)
