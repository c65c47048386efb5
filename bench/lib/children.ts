// Starting, talking to and stopping the benchmark's child processes (servers, fake Azure, load).
import { fork, spawn, type ChildProcess, type StdioOptions } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { FakeMessage, FakeReply, LoadJob, LoadReply, LoadResult } from './protocol.ts'

const BENCH_DIR = fileURLToPath(new URL('../', import.meta.url))
const live = new Set<ChildProcess>()

export interface Child {
  name: string
  proc: ChildProcess
  pid: number
  /** The last lines the child wrote, for error messages. */
  output: () => string
}

interface StartOptions {
  env?: Record<string, string | undefined>
  execArgv?: string[]
  timeoutMs?: number
  /** Pin the process to this CPU (taskset). */
  cpu?: number
}

/** Fork bench/<script> with IPC, wait for its first message of `readyType`. */
export async function start<T extends { type: string }> (
  name: string, script: string, readyType: string, options: StartOptions = {}
): Promise<{ child: Child, ready: T }> {
  const env = { ...process.env, NODE_ENV: 'production', ...options.env }
  const stdio: StdioOptions = ['ignore', 'pipe', 'pipe', 'ipc']
  const proc = options.cpu === undefined
    ? fork(BENCH_DIR + script, [], { env, execArgv: options.execArgv ?? [], stdio })
    : spawn('taskset', ['-c', String(options.cpu), process.execPath, ...(options.execArgv ?? []), BENCH_DIR + script], { env, stdio })
  live.add(proc)
  proc.once('exit', () => live.delete(proc))
  let tail = ''
  const keep = (chunk: Buffer): void => { tail = (tail + chunk.toString()).slice(-4000) }
  proc.stdout?.on('data', keep)
  proc.stderr?.on('data', keep)
  const child: Child = { name, proc, pid: proc.pid as number, output: () => tail }

  const ready = await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${name} did not start within ${options.timeoutMs ?? 30_000} ms`)), options.timeoutMs ?? 30_000)
    const onMessage = (message: T): void => {
      if (readyType !== '*' && message?.type !== readyType) return
      clearTimeout(timer)
      proc.off('message', onMessage)
      proc.off('exit', onExit)
      resolve(message)
    }
    const onExit = (code: number | null): void => fail(new Error(`${name} exited with code ${code}`))
    function fail (err: Error): void {
      clearTimeout(timer)
      proc.kill('SIGKILL')
      reject(new Error(`${err.message}\n--- ${name} output ---\n${tail}`))
    }
    proc.on('message', onMessage)
    proc.once('exit', onExit)
  })
  return { child, ready }
}

export async function startServer (name: string, script: string, options: StartOptions = {}): Promise<Child & { port: number }> {
  const port = await freePort()
  const { child } = await start(name, script, 'listening', { ...options, env: { ...options.env, BENCH_PORT: String(port) } })
  return { ...child, port }
}

/** Ask a child to stop (servers close and exit, so a --cpu-prof profile gets written); kill it after graceMs. */
export async function stop (child: Child, graceMs = 10_000): Promise<void> {
  const { proc } = child
  if (proc.exitCode !== null || proc.signalCode !== null) return
  const exited = once(proc, 'exit')
  if (proc.connected) proc.send({ type: 'stop' })
  else proc.kill('SIGTERM')
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
}

/** Every benchmark child still running (for CPU accounting). */
export function livePids (): number[] {
  return [...live].flatMap(proc => proc.pid === undefined ? [] : [proc.pid])
}

/** Kill whatever is still running (on error or exit). */
export function killAll (): void {
  for (const proc of live) proc.kill('SIGKILL')
}

/** Peak and current resident set size from /proc (Linux), in bytes. */
export function memory (pid: number): { peakRss: number, rss: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024
  return { peakRss: kb('VmHWM'), rss: kb('VmRSS') }
}

export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

// ---- fake Azure ----

export interface FakeChild extends Child {
  origin: string
  env: Record<string, string>
  setLatency: (ms: number) => Promise<void>
  stats: () => Promise<Extract<FakeReply, { type: 'stats' }>>
}

/** env: e.g. BENCH_FAKE_ANSWERS=adaptive (bench/fake-azure.ts). */
export async function startFakeAzure (
  latencyMs: number, env: Record<string, string> = {}, options: { cpu?: number } = {}
): Promise<FakeChild> {
  const { child, ready } = await start<FakeReply>('fake-azure', 'fake-azure.ts', 'listening', { ...options, env: { ...env, BENCH_CHAT_LATENCY_MS: String(latencyMs) } })
  if (ready.type !== 'listening') throw new Error('unexpected')
  const ask = async <T extends FakeReply['type']>(message: FakeMessage, answer: T): Promise<Extract<FakeReply, { type: T }>> => {
    const reply = new Promise<Extract<FakeReply, { type: T }>>(resolve => {
      const onMessage = (m: FakeReply): void => {
        if (m.type === answer) { child.proc.off('message', onMessage); resolve(m as Extract<FakeReply, { type: T }>) }
      }
      child.proc.on('message', onMessage)
    })
    child.proc.send(message)
    return await reply
  }
  return {
    ...child,
    origin: ready.origin,
    env: ready.env,
    setLatency: async (ms) => { await ask({ type: 'latency', ms }, 'ok') },
    stats: async () => await ask({ type: 'stats' }, 'stats')
  }
}

// ---- load generator ----

export interface LoadChild extends Child {
  run: (job: LoadJob, hardTimeoutMs: number) => Promise<LoadResult>
}

export async function startLoad (options: { cpu?: number } = {}): Promise<LoadChild> {
  const { child } = await start<LoadReply>('load', 'load.ts', 'ready', options)
  let nextId = 1
  return {
    ...child,
    run: async (job, hardTimeoutMs) => {
      const id = nextId++
      return await new Promise<LoadResult>((resolve, reject) => {
        const timer = setTimeout(() => {
          child.proc.off('message', onMessage)
          reject(new Error(`load job ${id} (${job.url}) exceeded its hard limit of ${hardTimeoutMs} ms`))
        }, hardTimeoutMs)
        const onMessage = (m: LoadReply): void => {
          if (m.type === 'ready' || m.id !== id) return
          clearTimeout(timer)
          child.proc.off('message', onMessage)
          if (m.type === 'result') resolve(m.result)
          else reject(new Error(`load job failed: ${m.message}`))
        }
        child.proc.on('message', onMessage)
        child.proc.send({ type: 'run', id, job })
      })
    }
  }
}

// ---- CPU accounting: how much CPU did processes other than ours use meanwhile? ----

const CLOCK_TICKS = 100 // USER_HZ on Linux

/** All CPUs' busy time (not idle/iowait), in seconds. */
function systemBusySec (): number {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] as string).trim().split(/\s+/).slice(1).map(Number)
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields
  return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS
}

/** A process's CPU time (all threads, those that have ended included), in seconds; 0 once it is gone. */
export function processCpuSec (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  } catch {
    return 0
  }
}

export interface CpuWindow {
  /** CPU used by the given processes, seconds. */
  ownSec: number
  /** CPU used by everything else on the machine, seconds. */
  foreignSec: number
  wallSec: number
}

/** Run fn and account the machine's CPU time meanwhile: our processes' against everyone else's. */
export async function accounted<T> (children: number[], fn: () => Promise<T>): Promise<{ value: T, cpu: CpuWindow }> {
  const pids = [process.pid, ...children]
  const own0 = pids.reduce((n, pid) => n + processCpuSec(pid), 0)
  const sys0 = systemBusySec()
  const wall0 = performance.now()
  const value = await fn()
  const ownSec = pids.reduce((n, pid) => n + processCpuSec(pid), 0) - own0
  const sysSec = systemBusySec() - sys0
  return { value, cpu: { ownSec, foreignSec: Math.max(0, sysSec - ownSec), wallSec: (performance.now() - wall0) / 1000 } }
}
