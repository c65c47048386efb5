// Identification ids are version-7 UUIDs: the creation time first (so that history's B-trees grow at their right
// edge), random bits after it (so that they stay unguessable and unique within a millisecond).
import t from 'tap'
import { timeOrderedId } from '../src/identification/ids.ts'
import { buildTestApp } from './helper.ts'
import { identify } from './support/http.ts'
import * as images from './support/images.ts'

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

t.test('a version-7 UUID whose first 48 bits are the time in milliseconds', async t => {
  const at = Date.UTC(2026, 11, 7, 22, 45, 1, 234)
  const id = timeOrderedId(at)
  t.match(id, V7)
  t.equal(parseInt(id.slice(0, 8) + id.slice(9, 13), 16), at)
  t.match(timeOrderedId(), V7, 'now by default')
  t.equal(timeOrderedId(0).slice(0, 13), '00000000-0000', 'the epoch')
})

t.test('ordered by time; unique and unpredictable within one millisecond', async t => {
  const at = Date.now()
  t.ok(timeOrderedId(at) < timeOrderedId(at + 1), 'a later millisecond sorts after')
  const same = new Set(Array.from({ length: 10_000 }, () => timeOrderedId(at)))
  t.equal(same.size, 10_000, 'no two alike')
  // 74 random bits: every hex digit after the version takes all its values across the set (the variant digit, 4).
  const tails = [...same].map(id => id.slice(15).replace(/-/g, ''))
  for (let i = 0; i < tails[0]!.length; i++) {
    const digits = new Set(tails.map(tail => tail[i]))
    t.ok(digits.size >= (i === 3 ? 4 : 16), `digit ${i} of the random part varies`)
  }
})

t.test('an identification gets one: its id tells when it was made', async t => {
  const app = await buildTestApp(t)
  const before = Date.now()
  const res = await identify(app, await images.jpeg(64, 48))
  const after = Date.now()
  t.equal(res.statusCode, 200)
  const id: string = res.body.data.identifyVehicle.id
  t.match(id, V7)
  const ms = parseInt(id.slice(0, 8) + id.slice(9, 13), 16)
  t.ok(ms >= before && ms <= after, 'made during the request')
})
