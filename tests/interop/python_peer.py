"""A Python aci-cache 0.1.1 instance for the interop tests, driven by argv.

    python_peer.py follower NAMESPACE SECONDS        prints "strategy X" on every change
    python_peer.py controller NAMESPACE SECONDS      writes until it switches to eager
    python_peer.py eager-writer NAMESPACE KEY VALUE  on a line of stdin, writes KEY in eager mode

REDIS_URL names the server. Every mode prints "ready" once subscribed.
"""
import os
import sys
import time

import redis
from aci_cache import AdaptiveCache

URL = os.environ["REDIS_URL"]


def make(namespace, **kwargs):
    # decode_responses=True: without it the original ignores every message.
    client = redis.Redis.from_url(URL, decode_responses=True)
    pubsub = redis.Redis.from_url(URL, decode_responses=True)
    return AdaptiveCache(client, pubsub_client=pubsub, namespace=namespace, **kwargs)


def main():
    mode, namespace = sys.argv[1], sys.argv[2]
    if mode == "follower":
        cache = make(namespace, is_controller=False)
        time.sleep(0.3)  # the original subscribes on a background thread
        print("ready", flush=True)
        deadline = time.time() + float(sys.argv[3])
        last = None
        while time.time() < deadline:
            current = cache.strategy
            if current != last:
                print("strategy", current, flush=True)
                last = current
            time.sleep(0.01)
        cache.stop()
    elif mode == "controller":
        cache = make(
            namespace,
            is_controller=True,
            controller_interval=0.2,
            sliding_window=1.0,
            high_threshold=5,
            low_threshold=2,
        )
        time.sleep(0.3)
        print("ready", flush=True)
        for i in range(30):
            cache.set(f"hot:{i}", "v")
        deadline = time.time() + float(sys.argv[3])
        while time.time() < deadline:
            time.sleep(0.05)
        print("strategy", cache.strategy, flush=True)
        cache.stop()
    elif mode == "eager-writer":
        key, value = sys.argv[3], sys.argv[4]
        cache = make(namespace, is_controller=False)
        cache._apply_switch("ttl", "eager")  # as the wire-vector capture does
        time.sleep(0.3)
        print("ready", flush=True)
        sys.stdin.readline()
        cache.set(key, value)
        print("written", flush=True)
        time.sleep(0.5)
        cache.stop()
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
