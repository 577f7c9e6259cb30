#!/usr/bin/env bash
# `make demo`: two local redis-servers on free ports, one filled by `ferry gen`, copied into the
# other by `ferry migrate` with its progress bar, then compared and stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
FERRY=${FERRY:-build/bin/ferry}
KEYS=${KEYS:-300000}

bench_init_tmp
trap bench_cleanup EXIT
src=$(free_port); start_redis "$src"
dst=$(free_port); start_redis "$dst"
echo "== source redis on 127.0.0.1:$src, target on 127.0.0.1:$dst"

echo "== ferry gen: $KEYS keys of every type, a quarter with TTLs, in databases 0 and 1"
"$FERRY" gen --to "redis://127.0.0.1:$src/0" --keys "$KEYS" --types mixed --ttl-fraction 0.25
"$FERRY" gen --to "redis://127.0.0.1:$src/1" --keys 20000 --types string --prefix other:

echo "== ferry migrate"
"$FERRY" migrate --from "redis://127.0.0.1:$src" --to "redis://127.0.0.1:$dst" --progress bar

for db in 0 1; do
  s=$(redis-cli -p "$src" -n "$db" dbsize); d=$(redis-cli -p "$dst" -n "$db" dbsize)
  echo "db$db: source $s keys, target $d keys"
  [[ "$s" == "$d" ]] || bench_die "db$db differs"
done
echo "== done; stopping the servers"
