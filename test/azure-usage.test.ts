// A malformed `usage` (or other metadata) in an otherwise good Azure OpenAI answer (security review,
// issue 7, item D): the answer is kept with usage null, and the oddity is logged once per response,
// at warn, naming the shape but no values.
import { Writable } from 'node:stream'
import t from 'tap'
import { pino } from 'pino'
import { FakeAzure } from './support/fake-azure.ts'
import { buildAzureTestApp } from './helper.ts'
import { identifyBody } from './support/multipart.ts'
import * as images from './support/images.ts'

const fake = await new FakeAzure().start()
t.teardown(() => fake.close())
const photo = await images.jpeg(40, 30)
const ANSWER = 'A red combine harvester: CLAAS Lexion 8900.'
const SECRET = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2FnZS1zZWNyZXQifQ.c2lnbmF0dXJlLXNlY3JldA'

const lines: string[] = []
const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
const { app } = await buildAzureTestApp(t, fake, {}, pino({ level: 'info' }, stream))

const malformed: Array<[string, unknown]> = [
  ['a string', '1042 tokens'],
  ['numeric strings', { prompt_tokens: '1000', completion_tokens: '42', total_tokens: '1042' }],
  ['negative numbers', { prompt_tokens: -1000, completion_tokens: 42, total_tokens: -958 }],
  ['missing fields', { prompt_tokens: 1000 }],
  ['an empty object', {}],
  ['null', null],
  ['an array', [1000, 42, 1042]],
  ['nested garbage', { prompt_tokens: { value: [1, 2] }, completion_tokens: [42], total_tokens: { $gt: 1 }, prompt_tokens_details: 'x'.repeat(5000) }],
  ['fractions and huge numbers', { prompt_tokens: 1.5, completion_tokens: 1e12, total_tokens: Number.MAX_SAFE_INTEGER }],
  ['a secret-looking value', { prompt_tokens: SECRET, completion_tokens: 42, total_tokens: 1042, [SECRET]: 1 }],
  ['no usage at all', undefined]
]

const warnings = (): Array<Record<string, any>> => lines.map(line => JSON.parse(line)).filter(e => e.level === 40 && /usage/.test(e.msg))

for (const [what, usage] of malformed) {
  t.test(`usage is ${what}: the answer is kept, usage null, one warning`, async t => {
    fake.chatFault = () => ({ kind: 'ok', answer: ANSWER, usage })
    const before = warnings().length
    const res = await app.inject({ method: 'POST', url: '/graphql', ...(await identifyBody(photo)) })
    const body = res.json()
    t.equal(res.statusCode, 200)
    t.notOk(body.errors, `no errors: ${JSON.stringify(body.errors)}`)
    t.equal(body.data?.identifyVehicle?.answer, ANSWER, 'the answer')
    t.equal(body.data?.identifyVehicle?.backend, 'AZURE_OPENAI')
    t.equal(body.data?.identifyVehicle?.usage, null, 'usage null')
    const added = warnings().slice(before)
    t.equal(added.length, 1, 'one warning for this response')
    t.match(added[0], { msg: /malformed usage/, upstreamStatus: 200 })
  })
}

t.test('a well-formed usage is reported and not warned about; a malformed model falls back to the deployment', async t => {
  fake.chatFault = () => ({ kind: 'ok', answer: ANSWER, usage: { prompt_tokens: 900, completion_tokens: 30, total_tokens: 930, prompt_tokens_details: { cached_tokens: 0 } } })
  const before = warnings().length
  const res = await app.inject({ method: 'POST', url: '/graphql', ...(await identifyBody(photo)) })
  t.same(res.json().data?.identifyVehicle?.usage, { promptTokens: 900, completionTokens: 30, totalTokens: 930 })
  t.equal(warnings().length, before, 'no warning')
})

t.test('the log names the shape, never the values', async t => {
  const all = lines.join('')
  t.notOk(all.includes(SECRET), 'the secret-looking value is not logged')
  t.notOk(all.includes(SECRET.split('.')[2] as string), 'nor a part of it')
  t.notOk(all.includes('1042 tokens'), 'nor a string value')
  t.notOk(all.includes('x'.repeat(100)), 'nor a long value')
  t.notOk(all.includes('fake-access-token-'), 'nor the access token')
  const shapes = warnings().map(w => JSON.stringify(w.usage))
  t.ok(shapes.every(shape => shape.length < 600), 'shapes are short')
  t.match(warnings().find(w => w.usage?.type === 'object' && w.usage?.fields?.prompt_tokens === 'negative integer'), { usage: { fields: { completion_tokens: 'integer' } } }, 'says which field is wrong and how')
})
