#!/usr/bin/env bash
# Starts a 3-member etcd cluster on 127.0.0.1-3 (client port 2379, peer port 2380), shaped like
# `raftor-kv cluster`: one process per member, loopback addresses, data (and fsync'd WALs) under
# one directory. Runs until Ctrl-C or SIGTERM, then stops the members.
#
#   apt-get install etcd-server            # Debian: etcd 3.4
#   benches/compare/etcd/cluster.sh [DATA_DIR]
#   raftor-kv bench --api etcd --endpoints http://127.0.0.1:2379,http://127.0.0.2:2379,http://127.0.0.3:2379
#
# Every member keeps etcd's defaults (fsync on every WAL write, snapshot every 100,000 entries),
# except that each writes its log at warn level so logging does not compete with the benchmark.
set -euo pipefail

data=${1:-./etcd-data}
etcd=${ETCD:-etcd}
command -v "$etcd" >/dev/null || { echo "etcd not found: apt-get install etcd-server" >&2; exit 2; }
mkdir -p "$data"
cluster="m1=http://127.0.0.1:2380,m2=http://127.0.0.2:2380,m3=http://127.0.0.3:2380"
pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT INT TERM

for i in 1 2 3; do
    ip=127.0.0.$i
    "$etcd" --name "m$i" --data-dir "$data/m$i" \
        --listen-client-urls "http://$ip:2379" --advertise-client-urls "http://$ip:2379" \
        --listen-peer-urls "http://$ip:2380" --initial-advertise-peer-urls "http://$ip:2380" \
        --initial-cluster "$cluster" --initial-cluster-state new \
        --initial-cluster-token raftor-bench-etcd --log-level warn \
        >"$data/m$i.log" 2>&1 &
    pids+=($!)
done

for _ in $(seq 1 100); do
    if curl -fsS http://127.0.0.1:2379/health 2>/dev/null | grep -q '"health":"true"'; then
        echo "etcd: 3 members on 127.0.0.1-3:2379 (data in $data); Ctrl-C stops them"
        wait
        exit 0
    fi
    sleep 0.2
done
echo "etcd did not become healthy; see $data/m*.log" >&2
exit 1
