// The generator's own limit: a server that does next to nothing (nginx, one worker, `return 302` from memory, no
// access log), so what wrk reaches against it is what the generator can drive on this box. A ratio is only
// reported where the ceiling it divides by stays clear of this (ops/bench.ts).
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export function startTrivialServer(dir: string, port: number): ChildProcess {
  mkdirSync(dir, { recursive: true })
  const conf = join(dir, 'nginx.conf')
  writeFileSync(
    conf,
    `worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  server { listen 127.0.0.1:${port}; location / { return 302 https://example.com/; } }
}
`,
  )
  return spawn('nginx', ['-p', `${dir}/`, '-c', conf], { stdio: ['ignore', 'ignore', 'inherit'] })
}
