import json,struct,sys
def load(p):
    b=open(p,'rb').read()
    n=struct.unpack('<Q',b[:8])[0]
    h=json.loads(b[8:8+n]); data=b[8+n:]
    meta=h.pop('__metadata__',{})
    return {k:data[v['data_offsets'][0]:v['data_offsets'][1]] for k,v in h.items()}, meta
a,ma=load(sys.argv[1]); b,mb=load(sys.argv[2])
same = a.keys()==b.keys() and all(a[k]==b[k] for k in a)
print("tensors:", len(a), "bit-identical:", same, "steps:", ma.get('scoregen.step'), mb.get('scoregen.step'))
