#!/usr/bin/env bash
# A/B of bench/compare.sh (shardlog only): before = 048f117 (last commit before issue 15), after = the issue-15 tree.
# Alternated B A B A ... in the same minutes; broker on cpu0, clients on cpu1 (compare.sh's defaults).
set -u
cd /work/wt-layers
for i in ${RUNS:-1 2}; do
  for side in before after; do
    if [ $side = before ]; then BIN=/work/wt-before/target/release; else BIN=/work/wt-layers/target/release; fi
    echo "=== run $i $side $(date -u +%H:%M:%S)"
    BROKERS=shardlog JPERF=0 PROFILE=0 WARMUP=15 IPERF_SECS=1 FIO_SIZE=64M \
      SHARDLOG_BIN=$BIN/shardlog LOADGEN_BIN=$BIN/loadgen OUT=/work/bench-ab/$side-$i \
      timeout 900 bash bench/compare.sh > /work/bench-ab/$side-$i.log 2>&1
    echo "rc=$?"
  done
done
echo "=== end $(date -u +%H:%M:%S)"
