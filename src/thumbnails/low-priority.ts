// Thumbnails are made in a child process at the lowest CPU priority (nice 19), so that decoding a photo for its
// thumbnail never takes the CPU from identifications: the kernel runs it only when the server's own threads do not
// want the core. In the same process, sharp's work ran at the priority of the request path and, one thumbnail after
// another, added ~3 ms of CPU to every identification waiting on Azure (bench scenario 2). The child starts with the
// first thumbnail, is forked again if it dies, and stops with the app.
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'

const CHILD = new URL('./thumbnail-child.ts', import.meta.url)
/** A thumbnail taking longer than this (the child stuck, or starved for that long by a busy core) is given up. */
const JOB_TIMEOUT_MS = 30_000
const STOP_GRACE_MS = 2_000

export class ThumbnailProcessError extends Error {
  override name = 'ThumbnailProcessError'
}

interface Pending { resolve: (jpeg: Buffer) => void, reject: (err: Error) => void, timer: NodeJS.Timeout }
type Reply = { ready: true } | { n: number, jpeg: Uint8Array } | { n: number, error: { name: string, message: string } }

export interface ThumbnailProcess {
  make (image: Buffer): Promise<Buffer>
  /** The child's pid while it runs (tests). */
  readonly pid: number | undefined
  close (): Promise<void>
}

export function thumbnailProcess (): ThumbnailProcess {
  let child: ChildProcess | null = null
  let closed = false
  let next = 0
  const pending = new Map<number, Pending>()

  const failAll = (reason: string): void => {
    for (const [n, job] of pending) {
      clearTimeout(job.timer)
      pending.delete(n)
      job.reject(new ThumbnailProcessError(reason))
    }
  }

  const start = (): ChildProcess => {
    // execArgv as the server's (type stripping, --cpu-prof in the bench is not wanted there: the child has its own cost)
    const started = fork(CHILD, [], {
      serialization: 'advanced', // Buffers travel as bytes, not as JSON arrays
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: process.execArgv.filter(arg => !arg.startsWith('--cpu-prof')),
      // Nothing of the server's configuration (connection strings, keys): only what libvips and Node read.
      env: Object.fromEntries(Object.entries(process.env).filter(([name]) => /^(VIPS_|SHARP_|NODE_|PATH$|TMPDIR$|HOME$)/.test(name)))
    })
    started.on('message', (reply: Reply) => {
      if ('ready' in reply) return
      const job = pending.get(reply.n)
      if (job === undefined) return // given up already
      pending.delete(reply.n)
      clearTimeout(job.timer)
      if ('jpeg' in reply) job.resolve(Buffer.from(reply.jpeg.buffer, reply.jpeg.byteOffset, reply.jpeg.byteLength))
      else job.reject(new ThumbnailProcessError(`${reply.error.name}: ${reply.error.message}`))
    })
    started.on('error', () => {}) // an exit follows; a send to a dead child also lands here
    started.on('exit', (code, signal) => {
      if (child === started) child = null
      failAll(`the thumbnail process ended (${signal ?? `exit code ${String(code)}`})`)
    })
    return started
  }

  return {
    get pid () { return child?.pid },
    async make (image) {
      if (closed) throw new ThumbnailProcessError('closed')
      child ??= start()
      const n = next++
      const current = child
      return await new Promise<Buffer>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(n)
          reject(new ThumbnailProcessError(`no thumbnail after ${JOB_TIMEOUT_MS} ms`))
          current.kill('SIGKILL') // stuck: the next job starts a fresh one
        }, JOB_TIMEOUT_MS)
        pending.set(n, { resolve, reject, timer })
        try {
          current.send({ n, image })
        } catch { // the channel closed under us: the exit handler fails this job
          current.kill('SIGKILL')
        }
      })
    },
    async close () {
      closed = true
      const current = child
      if (current === null || current.exitCode !== null || current.signalCode !== null) return
      const exited = once(current, 'exit')
      current.disconnect() // the child exits on 'disconnect' once its job is sent
      const timer = setTimeout(() => current.kill('SIGKILL'), STOP_GRACE_MS)
      await exited
      clearTimeout(timer)
    }
  }
}
