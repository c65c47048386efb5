// The background lane of vision slots (bulk jobs' items): beside VISION_MAX_CONCURRENCY, at most its own slots,
// and only while no interactive caller waits, so that bulk work never makes an interactive caller wait or be refused.
import t from 'tap'
import { AdmissionGate, type Release } from '../src/limits/admission.ts'

const options = { maxConcurrency: 2, maxConcurrencyPerCaller: 2, queueSize: 2, queueTimeoutMs: 5_000, backgroundConcurrency: 2 }

t.test('8 bulk items and a burst of interactive callers: no interactive caller is refused or waits for bulk work', async t => {
  const refused: string[] = []
  const gate = new AdmissionGate(options, { refused: reason => { refused.push(reason) } })
  const background: Array<Promise<Release>> = Array.from({ length: 8 }, () => gate.acquire('bulk:job', undefined, 'background'))
  await new Promise(resolve => setImmediate(resolve))
  t.equal(gate.backgroundActive, 2, 'the lane holds its own 2 slots, no more')
  t.equal(gate.active, 0, 'none of the interactive slots')

  // Interactive callers take both interactive slots at once, whatever the lane holds.
  const a = await gate.acquire('caller:a')
  const b = await gate.acquire('caller:b')
  t.equal(gate.active, 2)
  // Two more wait (the queue holds 2); they are served by interactive releases, before any background waiter.
  const c = gate.acquire('caller:c')
  const d = gate.acquire('caller:d')
  const firstTwo = await Promise.all(background.slice(0, 2))
  for (const release of firstTwo) release()
  await new Promise(resolve => setImmediate(resolve))
  t.equal(gate.backgroundActive, 0, 'while interactive callers wait, a freed background slot goes to no background waiter')
  a()
  b()
  const [releaseC, releaseD] = await Promise.all([c, d])
  t.strictSame(refused, [], 'no interactive refusal')
  await new Promise(resolve => setImmediate(resolve))
  t.equal(gate.backgroundActive, 2, 'nobody interactive waits: the lane goes on')
  releaseC()
  releaseD()
  for (const pending of background.slice(2)) {
    const release = await pending
    release()
  }
  t.equal(gate.backgroundActive, 0)
  t.equal(gate.active, 0)
})

t.test('a background waiter leaves when its signal aborts; a gate without a lane holds background work until it has one', async t => {
  const gate = new AdmissionGate({ ...options, backgroundConcurrency: 1 })
  const held = await gate.acquire('bulk:job', undefined, 'background')
  const abort = new AbortController()
  const waiting = gate.acquire('bulk:job', abort.signal, 'background')
  abort.abort(new Error('stopping'))
  await t.rejects(waiting, { message: 'stopping' })
  held()
  t.equal(gate.backgroundActive, 0)

  const none = new AdmissionGate({ ...options, backgroundConcurrency: 0 })
  let granted = false
  const abortNone = new AbortController()
  const never = none.acquire('bulk:job', abortNone.signal, 'background').then(() => { granted = true })
  await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(granted, false, 'no lane: no background slot')
  abortNone.abort(new Error('gone'))
  await t.rejects(never)
})
