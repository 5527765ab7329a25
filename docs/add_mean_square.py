# Give a new checkpoint the metadata an older reader uses: data_mean_square = var + mean(mean^2).
import json,struct,sys
src,dst=sys.argv[1],sys.argv[2]
b=open(src,'rb').read()
n=struct.unpack('<Q',b[:8])[0]
h=json.loads(b[8:8+n]); data=b[8+n:]
m=h['__metadata__']
mean=json.loads(m['scoregen.data_mean']); var=float(m['scoregen.data_var'])
m['scoregen.data_mean_square']=str(var+sum(x*x for x in mean)/len(mean))
hb=json.dumps(h).encode()
hb+=b' '*((8-len(hb)%8)%8)
open(dst,'wb').write(struct.pack('<Q',len(hb))+hb+data)
print("data_mean_square", m['scoregen.data_mean_square'])
