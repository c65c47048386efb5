// The thumbnail process (forked by low-priority.ts): lowers its own CPU priority before it starts any thread that
// does the work, then makes one thumbnail per message. On Linux a priority is per thread and a new thread takes its
// creator's: set here, before sharp (libvips' threads) or libuv's pool exist, it holds for every thread that decodes.
import { readdirSync } from 'node:fs'
import { constants, setPriority } from 'node:os'

const LOWEST = constants.priority.PRIORITY_LOW // nice 19

function lowerEveryThread (): void {
  setPriority(LOWEST) // this (the main) thread
  let tids: string[] = []
  try { tids = readdirSync('/proc/self/task') } catch { return } // not Linux: the process priority is all there is
  for (const tid of tids) {
    try { setPriority(Number(tid), LOWEST) } catch {} // a thread that ended meanwhile
  }
}

lowerEveryThread()
const { makeThumbnail } = await import('./maker.ts')
lowerEveryThread() // and any thread that loading sharp started

interface Job { n: number, image: Uint8Array }

process.on('message', (job: Job) => {
  const image = Buffer.from(job.image.buffer, job.image.byteOffset, job.image.byteLength)
  makeThumbnail(image).then(
    jpeg => { process.send?.({ n: job.n, jpeg }) },
    (err: unknown) => {
      // sharp's message names the problem, never the bytes
      const error = err instanceof Error ? { name: err.name, message: err.message.slice(0, 200) } : { name: 'Error', message: 'not an Error' }
      process.send?.({ n: job.n, error })
    })
})
// The parent gone (closed, crashed, killed): nothing more will come.
process.on('disconnect', () => { process.exit(0) })
process.send?.({ ready: true })
