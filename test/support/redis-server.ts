// A real Redis for a test file: Debian's redis-server on a free loopback port, no persistence, killed
// when the test ends.
import { spawn } from 'node:child_process'
import type { Test } from 'tap'
import { freePort } from './server-process.ts'

/** Starts redis-server; resolves with its redis:// URL once it accepts connections. */
export async function startRedis (t: Test): Promise<string> {
  const port = await freePort()
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { redis.kill('SIGKILL') })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server did not start within 5 s')), 5000)
    redis.on('error', reject)
    redis.stdout!.on('data', (chunk: Buffer) => { if (chunk.toString().includes('Ready to accept connections')) { clearTimeout(timer); resolve() } })
  })
  return `redis://127.0.0.1:${port}`
}
