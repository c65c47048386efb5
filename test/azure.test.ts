// End to end through the real @azure/identity and openai code against the loopback fake Azure.
import t from 'tap'
import { createHash } from 'node:crypto'
import { DEFAULT_ANSWER, FakeAzure, imageFromChat } from './support/fake-azure.ts'
import { ANSWER_SCHEMA, ANSWER_SCHEMA_NAME } from '../src/vision/answer-schema.ts'
import { AZURE_DEPLOYMENT, buildAzureTestApp } from './helper.ts'
import { identifyBody } from './support/multipart.ts'
import * as images from './support/images.ts'

const fake = await new FakeAzure().start()
t.teardown(() => fake.close())
// An API key in the environment must neither break start-up nor be sent.
process.env.AZURE_OPENAI_API_KEY = 'this-key-must-never-be-used'

async function identify (app: Awaited<ReturnType<typeof buildAzureTestApp>>['app'], file: Buffer, variables = {}) {
  const res = await app.inject({ method: 'POST', url: '/graphql', ...(await identifyBody(file, variables)) })
  return { status: res.statusCode, body: res.json() }
}

t.test('v1 API: the plain client, Bearer token, deployment as model, the uploaded bytes in the data URL', async t => {
  const { app, vision } = await buildAzureTestApp(t, fake)
  await vision.warmUp?.()
  t.equal(vision.status().ready, true, 'ready after warm-up')

  const photo = await images.png(120, 80)
  const before = fake.chatRequests.length
  const { status, body } = await identify(app, photo, { language: 'de', instructions: 'Which tractor?' })
  t.equal(status, 200)
  t.notOk(body.errors, JSON.stringify(body.errors))
  const result = body.data.identifyVehicle
  t.equal(result.backend, 'AZURE_OPENAI')
  t.equal(result.answer, 'A green tractor: John Deere 6R series.')
  t.same(result.vehicles, DEFAULT_ANSWER.vehicles, 'the structured answer, field by field')
  t.equal(result.model, 'gpt-4o-2024-11-20')
  t.same(result.usage, { promptTokens: 1002, completionTokens: 42, totalTokens: 1044 })
  t.equal(result.language, 'de')
  t.equal(result.image.sha256, createHash('sha256').update(photo).digest('hex'))

  t.equal(fake.chatRequests.length, before + 1, 'one upstream call')
  const call = fake.chatRequests.at(-1)!
  t.equal(call.path, '/openai/v1/chat/completions')
  t.equal(call.apiVersion, null, 'no api-version on the v1 API')
  t.equal(call.body.model, AZURE_DEPLOYMENT)
  t.ok(call.body.max_tokens > 0, 'max_tokens set')
  t.same(call.body.response_format, { type: 'json_schema', json_schema: { name: ANSWER_SCHEMA_NAME, strict: true, schema: ANSWER_SCHEMA } },
    'structured outputs, strict, with the one schema')
  t.match(call.authorization, /^Bearer fake-access-token-\d+-exp\d+$/)
  t.equal(call.apiKeyHeader, undefined, 'no api-key header')
  t.notMatch(JSON.stringify(call.body) + call.authorization, /this-key-must-never-be-used/)
  t.match(call.body.messages[0], { role: 'system' })
  t.match(call.body.messages[0].content, /agricultural/)
  t.match(call.body.messages[0].content, /German \(de\)/)
  t.match(call.body.messages[0].content, /`vehicles`/, 'the prompt explains the fields')
  t.equal(call.body.messages[1].content[0].text, 'Which tractor?')
  const sent = imageFromChat(call)
  t.equal(sent.mimeType, 'image/png', 'the sniffed type')
  t.ok(sent.bytes.equals(photo), 'the data URL decodes to the uploaded bytes')

  t.equal(fake.tokenRequests.length, 1, 'one token fetch')
  t.equal(fake.tokenRequests[0]!.resource, 'https://cognitiveservices.azure.com', 'the Cognitive Services scope, as a resource')
  t.equal(fake.tokenRequests[0]!.headerOk, true, 'the identity header was sent')
})

t.test('dated API version: AzureOpenAI with the deployment in the URL and api-version', async t => {
  const { app } = await buildAzureTestApp(t, fake, { AZURE_OPENAI_API_VERSION: '2024-10-21' })
  const photo = await images.jpeg(64, 64)
  const { body } = await identify(app, photo)
  t.notOk(body.errors, JSON.stringify(body.errors))
  const call = fake.chatRequests.at(-1)!
  t.equal(call.path, `/openai/deployments/${AZURE_DEPLOYMENT}/chat/completions`)
  t.equal(call.apiVersion, '2024-10-21')
  t.equal(call.body.response_format?.type, 'json_schema', 'structured outputs on the dated API too')
  t.match(call.authorization, /^Bearer fake-access-token-/)
  t.equal(call.apiKeyHeader, undefined)
  t.equal(body.data.identifyVehicle.language, 'ru', 'the default language')
  t.match(call.body.messages[0].content, /Russian \(ru\)/)
  t.match(call.body.messages[1].content[0].text, /type .*make.*model/i, 'default instructions')
  t.ok(imageFromChat(call).bytes.equals(photo))
})

t.test('the tutorial variable names still work', async t => {
  const { app, vision } = await buildAzureTestApp(t, fake, { GPT4V_ENDPOINT: fake.origin, GPT4V_DEPLOYMENT: 'legacy-deployment', AZURE_OPENAI_DEPLOYMENT: '' })
  t.equal(vision.status().deployment, 'legacy-deployment')
  const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query: '{ vision { backend deployment } }' } })
  t.same(res.json().data.vision, { backend: 'AZURE_OPENAI', deployment: 'legacy-deployment' })
})

t.test('the fake Azure refuses a request without our structured output, as a guard for these tests', async t => {
  const { vision } = await buildAzureTestApp(t, fake)
  await vision.warmUp?.()
  const token = [...fake.issued.keys()].at(-1)
  const before = fake.badResponseFormats
  const formats = [undefined, { type: 'json_object' }, { type: 'json_schema', json_schema: { name: ANSWER_SCHEMA_NAME, strict: false, schema: ANSWER_SCHEMA } },
    { type: 'json_schema', json_schema: { name: 'other', strict: true, schema: ANSWER_SCHEMA } }]
  for (const format of formats) {
    const res = await fetch(`${fake.origin}/openai/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: AZURE_DEPLOYMENT, messages: [], ...(format === undefined ? {} : { response_format: format }) })
    })
    t.equal(res.status, 400, JSON.stringify(format))
    t.match((await res.json()).error, { param: 'response_format' })
  }
  t.equal(fake.badResponseFormats, before + formats.length)
})
