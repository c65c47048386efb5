// The simulated backend's structured result: obviously simulated, deterministic, every field filled, so a
// front end can render the whole Identification with no Azure.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { buildTestApp } from './helper.ts'
import { identify } from './support/http.ts'
import * as images from './support/images.ts'
import { parseAnswer } from '../src/vision/answer-schema.ts'
import { SIMULATED_CATEGORIES, simulatedVehicles } from '../src/vision/simulated.ts'

t.test('one vehicle: make "Simulated", confidence LOW, a category from the SHA-256 of the image', async t => {
  const image = randomBytes(1000)
  const [vehicle, ...rest] = simulatedVehicles({ image })
  t.equal(rest.length, 0)
  const digest = createHash('sha256').update(image).digest()
  t.match(vehicle, {
    category: SIMULATED_CATEGORIES[digest.readUInt32BE(0) % SIMULATED_CATEGORIES.length],
    make: 'Simulated',
    model: `SIM-${digest.toString('hex').slice(0, 8)}`,
    confidence: 'LOW'
  })
  t.match(vehicle?.evidence[0], /^\[SIMULATED\]/)
  t.same(simulatedVehicles({ image }), simulatedVehicles({ image: Buffer.from(image) }), 'deterministic')
  // It is what the schema allows: a front end written against the simulated backend handles the model's answers.
  t.doesNotThrow(() => parseAnswer(JSON.stringify({ answer: 'x', vehicles: simulatedVehicles({ image }), imageQuality: 'CLEAR' })))

  const seen = new Set<string>()
  for (let i = 0; i < 500; i++) seen.add(simulatedVehicles({ image: randomBytes(32) })[0]?.category ?? '')
  t.equal(seen.size, SIMULATED_CATEGORIES.length, 'every category but OTHER turns up')
  t.notOk(seen.has('OTHER'))
})

t.test('through the API: every field, the same for the same photo', async t => {
  const app = await buildTestApp(t)
  const photo = await images.jpeg(64, 48)
  const first = await identify(app, photo)
  const second = await identify(app, photo)
  t.equal(first.body.errors, undefined)
  const result = first.body.data.identifyVehicle
  t.match(result.answer, /^\[SIMULATED\]/)
  t.equal(result.vehicles.length, 1)
  t.match(result.vehicles[0], { make: 'Simulated', confidence: 'LOW', kind: /^(MACHINE|IMPLEMENT)$/, model: /^SIM-[0-9a-f]{8}$/ })
  t.ok(SIMULATED_CATEGORIES.includes(result.vehicles[0].category))
  t.same(second.body.data.identifyVehicle.vehicles, result.vehicles, 'deterministic')
})
