#!/usr/bin/env bash
# Instructions per operation, counted by callgrind: unlike wall time on a shared,
# noisy machine these are stable from run to run (as rustls' ci-bench does).
#
#   benches/instructions.sh [FILTER]      (needs valgrind)
#
# Each operation runs under callgrind twice, warm-up + LOW and warm-up + HIGH times;
# (instructions(HIGH) - instructions(LOW)) / (HIGH - LOW) is the cost of one run in
# steady state, without start-up, set-up and warm-up.
set -euo pipefail
cd "$(dirname "$0")/.."
LOW=1000
HIGH=3000
bin=$(cargo bench -p cpppo-benches --bench allocations --no-run 2>&1 |
    sed -n 's/.*Executable .*(\(.*allocations-[0-9a-f]*\)).*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "no allocations bench binary" >&2; exit 1; }
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" --repeat "$1" "$2" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-50s %12s\n' operation instr/op
for name in $("$bin" --list); do
    case "$name" in *"${1:-}"*) ;; *) continue ;; esac
    low=$(count "$name" $LOW)
    high=$(count "$name" $HIGH)
    printf '%-50s %12s\n' "$name" $(( (high - low) / (HIGH - LOW) ))
done
