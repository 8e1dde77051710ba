#!/bin/sh
# As the official image: `-x` arguments go to redis-server, which runs as the redis user; a config-less server in a
# container listens on every interface (protected mode off), since the network is the container's.
set -eu
if [ "${1#-}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = redis-server ] && [ "${2:-}" != --version ] && [ "${2:-}" != -v ]; then
  shift
  set -- redis-server --bind '* -::*' --protected-mode no "$@"
  if [ "$(id -u)" = 0 ]; then
    chown -R redis:redis /data 2>/dev/null || true
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
