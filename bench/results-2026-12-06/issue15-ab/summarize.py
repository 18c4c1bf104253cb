import statistics as st
rows={}
N=[1,2,3,4,5]
for side in ['before','after']:
    for i in N:
        t=open(f"{side}-{i}.summary.md").read()
        sec=t[t.index('## Runs'):t.index('## Ratios')]
        for line in sec.splitlines():
            c=[x.strip() for x in line.split('|')]
            if len(c)>5 and c[1]=='shardlog':
                sc=c[2]; mbs=float(c[4].replace(',','')); cpu=float(c[9]); rssp=c[11]
                p99=c[6].split('/')[1].strip() if '/' in c[6] else None
                rows.setdefault(sc,{}).setdefault(side,[]).append((mbs,cpu,p99,rssp))
print("| scenario (client) | before MB/s median [range] | after MB/s median [range] | after/before | broker CPU s/GB before / after (median) |")
print("| --- | --- | --- | --- | --- |")
for sc,d in rows.items():
    if sc.startswith('latency'): continue
    b=[x[0] for x in d['before']]; a=[x[0] for x in d['after']]
    bc=[x[1] for x in d['before']]; ac=[x[1] for x in d['after']]
    print(f"| {sc} | {st.median(b):,.0f} [{min(b):,.0f}–{max(b):,.0f}] | {st.median(a):,.0f} [{min(a):,.0f}–{max(a):,.0f}] | {st.median(a)/st.median(b):.2f} | {st.median(bc):.2f} / {st.median(ac):.2f} |")
print()
for sc,d in rows.items():
    if not sc.startswith('latency'): continue
    b=[x[2] for x in d['before']]; a=[x[2] for x in d['after']]
    print(sc, 'p99 before', b, 'after', a)
for side in ['before','after']:
    print(side,'rss end/peak', [x[3] for x in rows['rdk-consume-p1'][side]])
