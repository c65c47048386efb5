// Thumbnails are made in a child process at the lowest CPU priority (src/thumbnails/low-priority.ts): every thread
// of it runs at nice 19, it survives bad images, comes back after being killed, and never outlives the app.
import { readdirSync, readFileSync } from 'node:fs'
import t from 'tap'
import sharp from 'sharp'
import { buildTestApp, tempDataDir } from './helper.ts'
import { identify } from './support/http.ts'
import { jpeg, png } from './support/images.ts'
import { thumbnailProcess, ThumbnailProcessError } from '../src/thumbnails/low-priority.ts'

const LINUX = process.platform === 'linux'

/** The nice value of each thread of a process (field 19 of /proc/<pid>/task/<tid>/stat). */
function threadNiceness (pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map(tid => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // after "pid (comm) "
    return Number(fields[16]) // field 19 overall: fields[0] is field 3
  })
}

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

async function gone (pid: number): Promise<boolean> {
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise(resolve => setTimeout(resolve, 20))
  return !alive(pid)
}

t.test('a thumbnail from the child: a JPEG of at most 256 px, every thread of the child at nice 19', async t => {
  const child = thumbnailProcess()
  t.teardown(() => child.close())
  t.equal(child.pid, undefined, 'nothing started before the first thumbnail')
  const made = await child.make(await jpeg(1200, 900))
  const meta = await sharp(made).metadata()
  t.equal(meta.format, 'jpeg')
  t.equal(meta.width, 256)
  t.equal(meta.height, 192)
  const pid = child.pid as number
  t.ok(pid > 0)
  if (LINUX) {
    const niceness = threadNiceness(pid)
    t.ok(niceness.length >= 2, `${niceness.length} threads`)
    t.same(niceness.filter(n => n !== 19), [], 'no thread of the child above the lowest priority')
    t.equal(threadNiceness(process.pid)[0], 0, 'the server itself is untouched')
  }
  // several at once: each answer goes to its own request
  const sizes = [[640, 480], [300, 1000], [256, 100]] as const
  const thumbs = await Promise.all(sizes.map(async ([w, h]) => await child.make(await png(w, h))))
  t.same(await Promise.all(thumbs.map(async b => { const m = await sharp(b).metadata(); return [m.width, m.height] })),
    [[256, 192], [77, 256], [256, 100]])
  await child.close()
  t.ok(await gone(pid), 'closed: the child has exited')
  await t.rejects(child.make(await jpeg(10, 10)), ThumbnailProcessError, 'closed: no new thumbnails')
})

t.test('bad bytes fail that thumbnail only; a killed child is replaced by the next thumbnail', async t => {
  const child = thumbnailProcess()
  t.teardown(() => child.close())
  await t.rejects(child.make(Buffer.from('not an image at all')), ThumbnailProcessError)
  await t.rejects(child.make(Buffer.alloc(0)), ThumbnailProcessError)
  const first = child.pid as number
  t.ok(alive(first), 'still running after bad input')
  t.ok((await child.make(await jpeg(400, 300))).length > 0)

  // killed while making one: that one fails, with a reason and no bytes
  const big = await jpeg(4000, 3000)
  const pendingThumb = child.make(big)
  process.kill(first, 'SIGKILL')
  const err = await pendingThumb.then(() => null, (e: unknown) => e)
  t.type(err, ThumbnailProcessError)
  t.match((err as Error).message, /ended \(SIGKILL\)/)
  t.ok(await gone(first))
  t.ok((await child.make(await jpeg(400, 300))).length > 0, 'the next thumbnail starts a new child')
  t.not(child.pid, first)
})

t.test('the app: thumbnails made by the child, which exits when the app closes', async t => {
  const app = await buildTestApp(t, { env: { DATA_DIR: tempDataDir(), THUMBNAIL_PRIORITY: 'low' } })
  const res = await identify(app, await jpeg(800, 600))
  t.notOk(res.body.errors)
  await app.history!.flushed()
  await app.thumbnails!.maker.idle()
  const pid = app.thumbnails!.process.pid
  t.ok(pid !== undefined && alive(pid), 'the child runs')
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).payload
  t.match(metrics, /agrivision_thumbnails_total\{result="made"\} 1/)
  await app.close()
  t.ok(await gone(pid as number), 'gone with the app')
})

t.test('THUMBNAIL_PRIORITY=normal: made in the server\'s process, no child', async t => {
  const app = await buildTestApp(t, { env: { THUMBNAIL_PRIORITY: 'normal' } })
  t.notOk((await identify(app, await jpeg(800, 600))).body.errors)
  await app.history!.flushed()
  await app.thumbnails!.maker.idle()
  t.equal(app.thumbnails!.process.pid, undefined)
  t.match((await app.inject({ method: 'GET', url: '/metrics' })).payload, /agrivision_thumbnails_total\{result="made"\} 1/)
})
