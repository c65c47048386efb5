// The simulated backend's structured result: obviously simulated, deterministic, every field filled, so a
// front end can render the whole Identification with no Azure.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { buildTestApp } from './helper.ts'
import { identify } from './support/http.ts'
import * as images from './support/images.ts'
import { parseAnswer } from '../src/vision/answer-schema.ts'
import { createSimulatedVision, SIMULATED_CATEGORIES, SIMULATED_LOW_MIN_SHORT_SIDE, simulatedVehicles } from '../src/vision/simulated.ts'
import type { ImageDetail } from '../src/image/tokens.ts'

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

t.test('at detail low it "sees" a sent image of 300 pixels or more on its short side: MEDIUM and CLEAR; below, LOW and TOO_SMALL', async t => {
  const vision = createSimulatedVision()
  const ask = async (detail: ImageDetail, width: number, height: number) => await vision.identify({
    image: randomBytes(64), mimeType: 'image/jpeg', width, height, detail, instructions: 'x', language: 'en', signal: new AbortController().signal
  })
  const cases: Array<[ImageDetail, number, number, string, string]> = [
    ['low', 512, 384, 'MEDIUM', 'CLEAR'], // a 4032×3024 photo at LOW
    ['low', 384, 512, 'MEDIUM', 'CLEAR'],
    ['low', 300, 300, 'MEDIUM', 'CLEAR'], // the edge
    ['low', 512, 299, 'LOW', 'TOO_SMALL'],
    ['low', 400, 250, 'LOW', 'TOO_SMALL'], // a small photo, sent as is
    ['low', 64, 48, 'LOW', 'TOO_SMALL'],
    ['high', 1024, 768, 'LOW', 'CLEAR'], // other details unchanged: LOW
    ['high', 400, 250, 'LOW', 'CLEAR'],
    ['auto', 1024, 768, 'LOW', 'CLEAR']
  ]
  for (const [detail, width, height, confidence, imageQuality] of cases) {
    const result = await ask(detail, width, height)
    t.equal(result.vehicles[0]?.confidence, confidence, `${detail} ${width}×${height}: ${confidence}`)
    t.equal(result.imageQuality, imageQuality, `${detail} ${width}×${height}: ${imageQuality}`)
    t.doesNotThrow(() => parseAnswer(JSON.stringify({ answer: result.answer, vehicles: result.vehicles, imageQuality: result.imageQuality })), 'a valid answer')
    t.equal(result.vehicles[0]?.evidence.some(cue => /short side at detail low/.test(cue)), detail === 'low', 'the evidence says why, at low')
  }
  t.equal(SIMULATED_LOW_MIN_SHORT_SIDE, 300)
})

t.test('through the API at LOW: a 4032×3024 photo is MEDIUM, a 400×250 one LOW', async t => {
  const app = await buildTestApp(t)
  const large = await identify(app, await images.jpeg(4032, 3024), { variables: { detail: 'LOW' } })
  t.equal(large.body.data.identifyVehicle.vehicles[0].confidence, 'MEDIUM')
  const small = await identify(app, await images.jpeg(400, 250), { variables: { detail: 'LOW' } })
  t.equal(small.body.data.identifyVehicle.vehicles[0].confidence, 'LOW')
  const high = await identify(app, await images.jpeg(4032, 3024), { variables: { detail: 'HIGH' } })
  t.equal(high.body.data.identifyVehicle.vehicles[0].confidence, 'LOW', 'at HIGH: LOW, as always')
})
