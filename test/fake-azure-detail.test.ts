// The fake Azure as ADAPTIVE detail's tests and bench need it (issue 21): `detailAwareAnswers` answers by the
// sent image's colour and the detail the service sent, `usageByDetail` charges image tokens by the tile rule,
// `photoOfColour` makes the keyed photos; and what the API says of the detail (detailUsed, looks) meanwhile.
import t from 'tap'
import sharp from 'sharp'
import type { FastifyInstance } from 'fastify'
import {
  COLOUR_STEP, DEFAULT_ANSWER, FakeAzure, USAGE_COMPLETION_TOKENS, USAGE_TEXT_TOKENS, colourKey, detailAwareAnswers, imageFromChat,
  type AnswersByDetail
} from './support/fake-azure.ts'
import { buildAzureTestApp } from './helper.ts'
import { encodeParts } from './support/multipart.ts'
import { photoOfColour } from './support/images.ts'
import type { VisionAnswer } from '../src/vision/answer-schema.ts'

const fake = await new FakeAzure().start()
t.teardown(() => fake.close())
const { app } = await buildAzureTestApp(t, fake)

const QUERY = `mutation ($image: Upload!, $detail: ImageDetail) {
  identifyVehicle(image: $image, detail: $detail) {
    answer detailUsed looks vehicles { confidence } usage { promptTokens completionTokens totalTokens }
    image { sentWidth sentHeight estimatedImageTokens }
  }
}`

async function identify (server: FastifyInstance, photo: Buffer, detail: string | null): Promise<any> {
  const body = await encodeParts([
    ['operations', JSON.stringify({ query: QUERY, variables: { image: null, detail } })],
    ['map', JSON.stringify({ 0: ['variables.image'] })],
    ['0', photo, 'photo.jpg', 'image/jpeg']
  ])
  const res = await server.inject({ method: 'POST', url: '/graphql', ...body })
  return res.json()
}

const answer = (text: string, confidence: 'HIGH' | 'MEDIUM' | 'LOW', imageQuality: VisionAnswer['imageQuality'] = 'CLEAR'): VisionAnswer =>
  ({ ...DEFAULT_ANSWER, answer: text, vehicles: [{ ...DEFAULT_ANSWER.vehicles[0]!, confidence }], imageQuality })

const GREEN = { r: 48, g: 128, b: 64 }
const RED = { r: 208, g: 48, b: 48 }
const BLUE = { r: 48, g: 64, b: 192 }
const table = new Map<string, AnswersByDetail>([
  [colourKey(GREEN), { low: answer('green, seen small', 'MEDIUM'), high: answer('green, seen close', 'HIGH') }],
  [colourKey(RED), { low: answer('red, too small', 'LOW', 'TOO_SMALL'), high: answer('red, seen close', 'HIGH') }]
])

const green = await photoOfColour(GREEN, 4032, 3024)
const red = await photoOfColour(RED, 1920, 1080)

t.test('photoOfColour: a photo-sized JPEG whose mean colour is the one asked for, the same bytes every time', async t => {
  const { channels } = await sharp(green).stats()
  channels.slice(0, 3).forEach((channel, i) => t.ok(Math.abs(channel.mean - [GREEN.r, GREEN.g, GREEN.b][i]!) < 2, `channel ${i}: mean ${channel.mean}`))
  t.ok(channels[0]!.stdev > 3, 'noisy, like a photo')
  t.ok(green.length > 1_000_000, `${green.length} bytes at 12 MP: compresses like a photo, not a flat colour`)
  t.same(await photoOfColour(GREEN, 4032, 3024), green, 'deterministic')
  t.notSame(await photoOfColour(GREEN, 400, 250), await photoOfColour(BLUE, 400, 250), 'another colour, other bytes')
})

t.test('colourKey rounds each channel to a multiple of COLOUR_STEP', async t => {
  t.equal(COLOUR_STEP, 16)
  t.equal(colourKey({ r: 47.2, g: 128.9, b: 63.5 }), '48,128,64')
  t.equal(colourKey(GREEN), '48,128,64')
  t.not(colourKey(GREEN), colourKey(BLUE))
})

t.test('detailAwareAnswers: each photo by its colour, LOW looks get the low answer, HIGH and AUTO the high one', async t => {
  fake.chatFault = detailAwareAnswers(table)
  t.teardown(() => { fake.chatFault = () => ({ kind: 'ok' }) })
  const cases: Array<[Buffer, string, string, string]> = [
    [green, 'LOW', 'low', 'green, seen small'],
    [green, 'HIGH', 'high', 'green, seen close'],
    [green, 'AUTO', 'auto', 'green, seen close'],
    [red, 'LOW', 'low', 'red, too small'],
    [red, 'HIGH', 'high', 'red, seen close']
  ]
  for (const [photo, detail, sent, expected] of cases) {
    const before = fake.chatRequests.length
    const body = await identify(app, photo, detail)
    t.notOk(body.errors, `${detail}: no errors ${JSON.stringify(body.errors)}`)
    t.equal(body.data.identifyVehicle.answer, expected, `${expected} (asked ${detail})`)
    t.equal(fake.chatRequests.length, before + 1, 'one model call')
    const request = imageFromChat(fake.chatRequests.at(-1)!)
    t.equal(request.detail, sent, `the request said detail "${sent}"`)
    if (sent === 'low') {
      const { width = 0, height = 0 } = await sharp(request.bytes).metadata()
      t.ok(width <= 512 && height <= 512, `the low look's image is ${width}×${height}: the key survives the downscale`)
    }
  }
})

t.test('detailAwareAnswers: a colour not in the table is refused (422, not retried); `unknown` replaces that', async t => {
  fake.chatFault = detailAwareAnswers(table)
  t.teardown(() => { fake.chatFault = () => ({ kind: 'ok' }) })
  const blue = await photoOfColour(BLUE, 800, 600)
  let before = fake.chatRequests.length
  const refused = await identify(app, blue, 'HIGH')
  t.ok(refused.errors?.length, 'the identification fails')
  t.notOk(refused.data?.identifyVehicle, 'no answer')
  t.equal(fake.chatRequests.length, before + 1, 'one call: a 422 is not retried')

  fake.chatFault = detailAwareAnswers(table, { unknown: { kind: 'ok', structured: answer('no idea', 'LOW', 'UNCLEAR') }, latencyMs: 50 })
  before = fake.chatRequests.length
  const started = Date.now()
  const body = await identify(app, blue, 'LOW')
  t.equal(body.data?.identifyVehicle?.answer, 'no idea', 'the `unknown` answer')
  t.equal(fake.chatRequests.length, before + 1)
  t.ok(Date.now() - started >= 50, 'latencyMs is kept')
})

t.test('an async chatFault is awaited', async t => {
  fake.chatFault = async () => { await new Promise(resolve => setTimeout(resolve, 20)); return { kind: 'ok', answer: 'after a while' } }
  t.teardown(() => { fake.chatFault = () => ({ kind: 'ok' }) })
  t.equal((await identify(app, red, 'LOW')).data?.identifyVehicle?.answer, 'after a while')
})

t.test('usageByDetail: prompt tokens are the text plus the image by its detail and size; off, the usual constant', async t => {
  fake.chatFault = () => ({ kind: 'ok' })
  fake.usageByDetail = true
  t.teardown(() => { fake.usageByDetail = false })
  const expected: Array<[Buffer, string, number]> = [
    [green, 'LOW', 85],
    [green, 'HIGH', 765], // 1024×768 sent: 2×2 tiles
    [green, 'AUTO', 765],
    [red, 'HIGH', 1105], // 1365×768 sent: 3×2 tiles
    [await photoOfColour(GREEN, 400, 250), 'HIGH', 255] // sent as is: 1×1 tile
  ]
  for (const [photo, detail, imageTokens] of expected) {
    const { data } = await identify(app, photo, detail)
    const { usage, image } = data.identifyVehicle
    t.equal(image.estimatedImageTokens, imageTokens, `${detail} ${image.sentWidth}×${image.sentHeight}: the server's estimate`)
    t.same(usage, {
      promptTokens: USAGE_TEXT_TOKENS + imageTokens,
      completionTokens: USAGE_COMPLETION_TOKENS,
      totalTokens: USAGE_TEXT_TOKENS + imageTokens + USAGE_COMPLETION_TOKENS
    }, `${detail}: charged ${imageTokens} image tokens, as the server estimated`)
  }
  fake.chatFault = () => ({ kind: 'ok', usage: { prompt_tokens: 7, completion_tokens: 1, total_tokens: 8 } })
  t.same((await identify(app, green, 'LOW')).data.identifyVehicle.usage, { promptTokens: 7, completionTokens: 1, totalTokens: 8 }, 'a fault\'s own usage wins')

  fake.usageByDetail = false
  fake.chatFault = () => ({ kind: 'ok' })
  t.same((await identify(app, green, 'LOW')).data.identifyVehicle.usage, { promptTokens: 1002, completionTokens: 42, totalTokens: 1044 }, 'off: the constant')
})

t.test('detailUsed is the detail sent and looks 1 for every detail but ADAPTIVE (test/adaptive.test.ts has its looks)', async t => {
  fake.chatFault = () => ({ kind: 'ok' })
  for (const detail of ['LOW', 'HIGH', 'AUTO']) {
    const { data } = await identify(app, red, detail)
    t.equal(data.identifyVehicle.detailUsed, detail, `${detail}: detailUsed`)
    t.equal(data.identifyVehicle.looks, 1, `${detail}: one look`)
  }
  const { data } = await identify(app, red, null)
  t.equal(data.identifyVehicle.detailUsed, 'AUTO', 'the server\'s default (VISION_IMAGE_DETAIL auto)')
})
