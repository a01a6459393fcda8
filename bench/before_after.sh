#!/usr/bin/env bash
# Two trees' benchmarks interleaved in one run (old, new, then new, old), so a noisy machine
# affects both alike. Usage: bench/before_after.sh OLD_TREE NEW_TREE (worktrees with .venv and
# .venv-lrs linked in); an OLD_TREE from before the layout change keeps its benchmarks in scripts/.
# Figures go to /tmp/bench_ab/<side>-<bench>-<round>.log; round 1 also runs the full sync.
old_tree=${1:?old tree}; new_tree=${2:?new tree}
out=/tmp/bench_ab; mkdir -p $out
run() { # side bench args...
  side=$1; shift; name=$1; shift
  if [ $side = old ]; then dir=$old_tree; mod=scripts.bench_$name; [ $name = imports ] && mod=scripts.bench_import
  else dir=$new_tree; mod=bench.$name; fi
  cd $dir && PYTHONPATH=$dir timeout 1200 .venv/bin/python -m $mod "$@" --json $out/$side-$name-$round.json > $out/$side-$name-$round.log 2>&1
  echo "$side $name round $round exit $?"
}
for round in 1 2; do
  if [ $round = 1 ]; then order="old new"; else order="new old"; fi
  for side in $order; do
    run $side imports
    run $side flush --statements 10000
    run $side sync memory
    [ $round = 1 ] && run $side sync full
  done
done
