// POST /graphql with the GraphQL multipart request spec: every malformed request is answered
// with a GraphQL-shaped 400 (413 for an oversize file), multipart needs a preflight header
// (CSRF), arguments are checked, and on a real server no request ever hangs.
import { createHash, randomBytes } from 'node:crypto'
import type { AddressInfo, Socket } from 'node:net'
import { Readable } from 'node:stream'
import t from 'tap'
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { pino } from 'pino'
import { buildTestApp } from './helper.ts'
import { send, sendJson, sendParts, type Answer as HttpAnswer } from './support/http.ts'
import { encodeParts, identifyBody, identifyParts, IDENTIFY, type Part } from './support/multipart.ts'
import { jpeg, png } from './support/images.ts'
import { closed, connect, postHead, readResponse, write, WAIT_MS } from './support/raw-http.ts'

interface Identification {
  language: string
  image: { sha256: string, mimeType: string, bytes: number, width: number, height: number }
}
type Answer = HttpAnswer<{ identifyVehicle?: Identification, vision?: { backend: string } }>

const PREFLIGHT = { 'graphql-require-preflight': '1' }
const MAP = JSON.stringify({ 0: ['variables.image'] })
const VISION_QUERY = '{ vision { backend } }'

const sha256 = (buffer: Buffer): string => createHash('sha256').update(buffer).digest('hex')
const operations = (variables: Record<string, unknown> = { image: null }): string => JSON.stringify({ query: IDENTIFY, variables })

const photo = await jpeg(64, 48)
const filePart = (name = '0', file: Buffer = photo): Part => [name, file, 'photo.jpg', 'image/jpeg']

/**
 * How a body reaches the parser: with its length declared (read whole, then split: src/graphql/buffered-multipart.ts)
 * or chunked (no length: busboy reads it as it streams). Every malformed shape must be answered alike by both.
 */
const DELIVERIES = ['with a declared length', 'chunked'] as const
type Delivery = typeof DELIVERIES[number]

async function sendRaw (
  app: FastifyInstance, contentType: string, payload: string | Buffer, delivery: Delivery = DELIVERIES[0]
): Promise<Answer> {
  const chunked = delivery === 'chunked'
  const res = await app.inject({
    method: 'POST',
    url: '/graphql',
    payload: chunked ? Readable.from([Buffer.from(payload)]) : payload,
    headers: { ...PREFLIGHT, 'content-type': contentType, ...(chunked ? { 'transfer-encoding': 'chunked' } : {}) }
  })
  return { statusCode: res.statusCode, headers: res.headers, body: res.json(), raw: res.payload }
}

async function sendPartsBy (app: FastifyInstance, parts: Part[], delivery: Delivery): Promise<Answer> {
  const { payload, headers } = await encodeParts(parts)
  return await sendRaw(app, headers['content-type'] as string, payload, delivery)
}

async function sendQuery (app: FastifyInstance, query: string, variables?: Record<string, unknown>): Promise<Answer> {
  return await sendJson(app, { query, variables })
}

/** `{ data: null, errors: [{ message, extensions: { code } }] }` with this status, code and message. */
function assertError (t: Test, answer: Answer, statusCode: number, code: string, message: RegExp): void {
  t.equal(answer.statusCode, statusCode, `HTTP ${statusCode}`)
  t.equal(answer.body.data, null, 'data is null')
  t.equal(answer.body.errors?.length, 1, 'exactly one error')
  t.equal(answer.body.errors?.[0]?.extensions.code, code, `extensions.code is ${code}`)
  t.match(answer.body.errors?.[0]?.message, message, 'the message says what is wrong')
}

function assertIdentified (
  t: Test, answer: Answer, image: Buffer, expected: { mimeType: string, width: number, height: number }
): Identification | undefined {
  t.equal(answer.statusCode, 200, 'HTTP 200')
  t.equal(answer.body.errors, undefined, 'no errors')
  const identification = answer.body.data?.identifyVehicle
  t.same(identification?.image, { sha256: sha256(image), bytes: image.length, ...expected }, 'image info describes the uploaded bytes')
  return identification
}

const app = await buildTestApp(t)

t.test('malformed multipart requests: HTTP 400 BAD_REQUEST, GraphQL-shaped', async (t) => {
  const cases: Array<[name: string, parts: Part[], message: RegExp]> = [
    ['missing `operations` (an empty form)', [], /Missing multipart field `operations`/],
    ['missing `operations` (only `map` and a file)', [['map', MAP], filePart()], /expected `operations` first, got field `map`/],
    ['missing `map`', [['operations', operations()]], /Missing multipart field `map`/],
    ['invalid `operations` JSON', [['operations', '{"query": '], ['map', MAP], filePart()], /`operations` is not valid JSON/],
    ['`operations` is null', [['operations', 'null'], ['map', MAP], filePart()], /`operations` must be a JSON object/],
    ['`operations` is a string', [['operations', '"query"'], ['map', MAP], filePart()], /`operations` must be a JSON object/],
    ['`operations` is a number', [['operations', '42'], ['map', MAP], filePart()], /`operations` must be a JSON object/],
    ['`operations` is a boolean', [['operations', 'true'], ['map', MAP], filePart()], /`operations` must be a JSON object/],
    ['`operations` is an array (batching is refused)',
      [['operations', `[${operations()}]`], ['map', JSON.stringify({ 0: ['0.variables.image'] })], filePart()],
      /Batched operations are not supported/],
    ['`map` before `operations`', [['map', MAP], ['operations', operations()], filePart()], /expected `operations` first, got field `map`/],
    ['a file before `map`', [['operations', operations()], filePart(), ['map', MAP]], /expected `map` after `operations`, got file `0`/],
    ['invalid `map` JSON', [['operations', operations()], ['map', '{"0": ['], filePart()], /`map` is not valid JSON/],
    ['`map` is null', [['operations', operations()], ['map', 'null'], filePart()], /`map` must be a JSON object/],
    ['`map` is an array', [['operations', operations()], ['map', '[["variables.image"]]'], filePart()], /`map` must be a JSON object/],
    ['`map` is a string', [['operations', operations()], ['map', '"variables.image"'], filePart()], /`map` must be a JSON object/],
    ['a `map` entry is not an array', [['operations', operations()], ['map', '{"0": "variables.image"}'], filePart()],
      /`map` entry `0` must be a non-empty array of strings/],
    ['a `map` entry item is not a string', [['operations', operations()], ['map', '{"0": [1]}'], filePart()],
      /`map` entry `0` must be a non-empty array of strings/],
    ['a `map` entry is an empty array', [['operations', operations()], ['map', '{"0": []}'], filePart()],
      /`map` entry `0` must be a non-empty array of strings/],
    ['a `map` path to nowhere', [['operations', operations()], ['map', '{"0": ["variables.nope"]}'], filePart()],
      /`map` path `variables.nope` does not lead to a value in `operations`/],
    ['a `map` path to a non-null value', [['operations', operations({ image: 'already here' })], ['map', MAP], filePart()],
      /`map` path `variables.image` must point at a `null` placeholder/],
    ['`__proto__` in a `map` path', [['operations', operations()], ['map', '{"0": ["__proto__.polluted"]}'], filePart()],
      /`map` path `__proto__.polluted` does not lead to a value/],
    ['`constructor` in a `map` path', [['operations', operations()], ['map', '{"0": ["variables.constructor.prototype.polluted"]}'], filePart()],
      /`map` path `variables.constructor.prototype.polluted` does not lead to a value/],
    ['a mapped file that never arrives', [['operations', operations()], ['map', MAP]], /File `0` named in `map` was never sent/],
    ['an unmapped extra file', [['operations', operations()], ['map', MAP], filePart('0'), filePart('1')], /File field `1` is not in `map`/],
    ['an unmapped file before the mapped one', [['operations', operations()], ['map', MAP], filePart('1'), filePart('0')], /File field `1` is not in `map`/],
    ['the mapped file sent twice', [['operations', operations()], ['map', MAP], filePart('0'), filePart('0')], /File field `0` is not in `map` \(or was sent twice\)/],
    ['too many files (2 in `map`, at most 1)',
      [['operations', operations({ image: null, other: null })], ['map', JSON.stringify({ 0: ['variables.image'], 1: ['variables.other'] })], filePart('0'), filePart('1')],
      /Too many files in `map`: at most 1 allowed/],
    ['an extra field after `map`', [['operations', operations()], ['map', MAP], ['extra', 'x'], filePart()], /Unexpected field `extra` after `map`/],
    ['an oversize `operations` field (> 64 KiB)',
      [['operations', JSON.stringify({ query: IDENTIFY, variables: { image: null }, padding: 'x'.repeat(65 * 1024) })], ['map', MAP], filePart()],
      /`operations` is larger than 65536 bytes/],
    ['an oversize `map` field (> 64 KiB)',
      [['operations', operations()], ['map', JSON.stringify({ 0: ['variables.image', 'x'.repeat(65 * 1024)] })], filePart()],
      /`map` is larger than 65536 bytes/]
  ]
  for (const delivery of DELIVERIES) {
    for (const [name, parts, message] of cases) {
      t.test(`${name}, ${delivery}`, async (t) => {
        assertError(t, await sendPartsBy(app, parts, delivery), 400, 'BAD_REQUEST', message)
      })
    }
  }

  t.test('`__proto__` and `constructor` paths pollute nothing', async (t) => {
    t.equal((Object.prototype as Record<string, unknown>).polluted, undefined)
  })
})

t.test('bodies that are not valid multipart at all: HTTP 400 BAD_REQUEST', async (t) => {
  const cases: Array<[name: string, contentType: string, body: string, message: RegExp]> = [
    ['no boundary in the content type', 'multipart/form-data', '--abc\r\n\r\n', /Malformed multipart request: .*Boundary not found/],
    ['garbage with a multipart content type', 'multipart/form-data; boundary=abc', 'garbage, not multipart', /Malformed multipart request/],
    ['a part header that never ends', 'multipart/form-data; boundary=abc', '--abc\r\nContent-Disposition: form-data; name="operations"',
      /Malformed multipart request: Unexpected end of multipart data/],
    ['a part body cut short (no closing boundary)', 'multipart/form-data; boundary=abc', '--abc\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{}',
      /Malformed multipart request: Unexpected end of multipart data/],
    // busboy skips a part without a name, so the request has no `operations`.
    ['a malformed part header (no Content-Disposition)', 'multipart/form-data; boundary=abc', '--abc\r\nnot a header\r\n\r\n{}\r\n--abc--\r\n',
      /Missing multipart field `operations`/],
    ['an empty body', 'multipart/form-data; boundary=abc', '', /Missing multipart field `operations`/],
    // Parts without a name are skipped, but counted: a flood of them is refused, not parsed to the end.
    ['ten thousand nameless parts', 'multipart/form-data; boundary=abc', `${'--abc\r\nX-A: b\r\n\r\nx\r\n'.repeat(10_000)}--abc--\r\n`,
      /Too many files: at most \d+ per request/],
    // Read whole, the header is refused at 8 KiB; busboy reads on (and cuts it), then finds no `map`.
    ['a part header of 100 KiB', 'multipart/form-data; boundary=abc',
      `--abc\r\nContent-Disposition: form-data; name="operations"\r\nX-Pad: ${'x'.repeat(100 * 1024)}\r\n\r\n{}\r\n--abc--\r\n`,
      /Malformed multipart request: a part header is larger than 8192 bytes|Missing multipart field `map`/]
  ]
  for (const delivery of DELIVERIES) {
    for (const [name, contentType, body, message] of cases) {
      t.test(`${name}, ${delivery}`, async (t) => {
        assertError(t, await sendRaw(app, contentType, body, delivery), 400, 'BAD_REQUEST', message)
      })
    }
  }
})

t.test('a file over MAX_UPLOAD_BYTES: HTTP 413 PAYLOAD_TOO_LARGE', async (t) => {
  const limited = await buildTestApp(t, { env: { MAX_UPLOAD_BYTES: '4096' } })

  t.test('a 10 KB file is refused', async (t) => {
    const answer = await send(limited, await identifyBody(Buffer.concat([photo, randomBytes(10_000)])))
    assertError(t, answer, 413, 'PAYLOAD_TOO_LARGE', /larger than the limit of 4096 bytes/)
    t.equal(answer.body.errors?.[0]?.extensions.maxBytes, 4096, 'extensions.maxBytes')
    t.equal(answer.headers.connection, 'close', 'the connection is closed after the refusal')
  })

  t.test('a file within the limit is accepted', async (t) => {
    const image = await jpeg(800, 600)
    t.ok(image.length < 4096, `the test image (${image.length} bytes) is under the limit`)
    assertIdentified(t, await send(limited, await identifyBody(image)), image, { mimeType: 'image/jpeg', width: 800, height: 600 })
  })
})

t.test('CSRF prevention', async (t) => {
  t.test('a multipart request without a preflight header: HTTP 400 BAD_REQUEST naming the header', async (t) => {
    assertError(t, await sendParts(app, identifyParts(photo), {}), 400, 'BAD_REQUEST', /cross-site request forgery.*graphql-require-preflight/)
  })

  for (const header of ['apollo-require-preflight', 'x-apollo-operation-name', 'graphql-require-preflight', 'mercurius-require-preflight']) {
    t.test(`\`${header}\` lets a multipart request through`, async (t) => {
      const answer = await sendParts(app, identifyParts(photo), { [header]: 'Identify' })
      assertIdentified(t, answer, photo, { mimeType: 'image/jpeg', width: 64, height: 48 })
    })
  }

  t.test('a JSON POST needs no extra header', async (t) => {
    const answer = await sendQuery(app, VISION_QUERY)
    t.equal(answer.statusCode, 200)
    t.same(answer.body, { data: { vision: { backend: 'SIMULATED' } } })
  })
})

t.test('an `Upload` cannot be forged in a JSON request: BAD_USER_INPUT', async (t) => {
  const message = /must be a file sent in a GraphQL multipart request/
  t.test('as a string', async (t) => {
    assertError(t, await sendQuery(app, IDENTIFY, { image: 'photo.jpg' }), 400, 'BAD_USER_INPUT', message)
  })
  t.test('as an object that looks like a file', async (t) => {
    const fake = { filename: 'photo.jpg', clientMimeType: 'image/jpeg', buffer: { type: 'Buffer', data: [...photo] } }
    assertError(t, await sendQuery(app, IDENTIFY, { image: fake }), 400, 'BAD_USER_INPUT', message)
  })
})

t.test('a successful upload', async (t) => {
  t.test('returns the identification of the uploaded image', async (t) => {
    const image = await png(120, 90)
    const identification = assertIdentified(t, await send(app, await identifyBody(image)), image, { mimeType: 'image/png', width: 120, height: 90 })
    t.equal(identification?.language, 'ru', 'the default language is ru')
  })

  t.test('an explicit language is echoed', async (t) => {
    const identification = assertIdentified(t, await send(app, await identifyBody(photo, { language: 'en' })), photo, { mimeType: 'image/jpeg', width: 64, height: 48 })
    t.equal(identification?.language, 'en')
  })

  t.test('a UTF-8 file name', async (t) => {
    const answer = await sendParts(app, identifyParts(photo, {}, 'трактор «Беларус» 🚜.jpg'))
    assertIdentified(t, answer, photo, { mimeType: 'image/jpeg', width: 64, height: 48 })
  })

  // Hand-built bodies a browser would not send, but other clients do: both parsers take them.
  const handBuilt = (preamble: string, disposition: Buffer): Buffer => Buffer.concat([
    Buffer.from(`${preamble}--abc\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${operations()}\r\n` +
      `--abc\r\nContent-Disposition: form-data; name="map"\r\n\r\n${MAP}\r\n--abc\r\n`),
    disposition, Buffer.from('\r\nContent-Type: image/jpeg\r\n\r\n'), photo, Buffer.from('\r\n--abc--\r\n')
  ])
  for (const delivery of DELIVERIES) {
    t.test(`a Latin-1 file name (not UTF-8), ${delivery}`, async (t) => {
      const body = handBuilt('', Buffer.concat([Buffer.from('Content-Disposition: form-data; name="0"; filename="'), Buffer.from('tracteur été.jpg', 'latin1'), Buffer.from('"')]))
      t.notOk(Buffer.from(body.toString('utf8')).equals(body), 'the body is not valid UTF-8')
      assertIdentified(t, await sendRaw(app, 'multipart/form-data; boundary=abc', body, delivery), photo, { mimeType: 'image/jpeg', width: 64, height: 48 })
    })
    t.test(`a preamble before the first boundary (RFC 2046), ${delivery}`, async (t) => {
      const body = handBuilt('This is a preamble.\r\n', Buffer.from('Content-Disposition: form-data; name="0"; filename="a.jpg"'))
      assertIdentified(t, await sendRaw(app, 'multipart/form-data; boundary=abc', body, delivery), photo, { mimeType: 'image/jpeg', width: 64, height: 48 })
    })
  }

  t.test('instructions of exactly 2000 characters are accepted', async (t) => {
    const answer = await send(app, await identifyBody(photo, { instructions: 'x'.repeat(2000) }))
    assertIdentified(t, answer, photo, { mimeType: 'image/jpeg', width: 64, height: 48 })
  })
})

t.test('invalid arguments: BAD_USER_INPUT', async (t) => {
  // Resolver errors: the request itself was fine, so HTTP 200 with `data: null`.
  const cases: Array<[name: string, variables: Record<string, string>, message: RegExp]> = [
    ['instructions longer than 2000 characters', { instructions: 'x'.repeat(2001) }, /`instructions` is 2001 characters long; at most 2000/],
    ['language that is not a tag', { language: 'not a tag!' }, /`language` must be a BCP-47 language tag/],
    ['language of 100 characters', { language: 'a'.repeat(100) }, /`language` must be a BCP-47 language tag/]
  ]
  for (const [name, variables, message] of cases) {
    t.test(name, async (t) => {
      assertError(t, await send(app, await identifyBody(photo, variables)), 200, 'BAD_USER_INPUT', message)
    })
  }
})

t.test('concurrent distinct uploads never cross', async (t) => {
  const images = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const width = 40 + i * 13
    const height = 30 + i * 7
    return { width, height, buffer: await jpeg(width, height) }
  }))
  t.equal(new Set(images.map(image => sha256(image.buffer))).size, 20, '20 distinct images')

  const answers = await Promise.all(images.map(async image => await send(app, await identifyBody(image.buffer))))
  answers.forEach((answer, i) => {
    const image = images[i] as typeof images[number]
    t.same(answer.body.data?.identifyVehicle?.image, {
      sha256: sha256(image.buffer), bytes: image.buffer.length, mimeType: 'image/jpeg', width: image.width, height: image.height
    }, `upload ${i} got its own answer`)
  })
})

t.test('on a real server, no request ever hangs', async (t) => {
  const server = await buildTestApp(t, { env: { MAX_UPLOAD_BYTES: '4096' } })
  const base = await server.listen({ host: '127.0.0.1', port: 0 })
  const { port } = server.server.address() as AddressInfo
  const oversize = await identifyBody(randomBytes(64 * 1024))

  async function fetchJson (path: string, init: RequestInit = {}): Promise<Answer> {
    const res = await fetch(base + path, { ...init, signal: AbortSignal.timeout(WAIT_MS) })
    const raw = await res.text()
    return { statusCode: res.status, headers: Object.fromEntries(res.headers), body: JSON.parse(raw), raw }
  }

  /** The server's end of the next connection it accepts. */
  async function nextServerSocket (): Promise<Socket> {
    return await new Promise(resolve => server.server.once('connection', resolve))
  }

  async function assertServerWorks (t: Test): Promise<void> {
    const post = await fetchJson('/graphql', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: VISION_QUERY }) })
    t.same([post.statusCode, post.body], [200, { data: { vision: { backend: 'SIMULATED' } } }], 'a GraphQL POST works')
    // GET has no content type that forces a preflight, so it needs the header too.
    const get = await fetchJson(`/graphql?query=${encodeURIComponent(VISION_QUERY)}`, { headers: PREFLIGHT })
    t.same([get.statusCode, get.body], [200, { data: { vision: { backend: 'SIMULATED' } } }], 'a GraphQL GET works')
    const image = await jpeg(100, 80)
    const upload = await identifyBody(image)
    const uploaded = await fetchJson('/graphql', { method: 'POST', headers: upload.headers, body: new Uint8Array(upload.payload) })
    assertIdentified(t, uploaded, image, { mimeType: 'image/jpeg', width: 100, height: 80 })
  }

  t.test('an over-limit file sent in 1 KiB chunks gets its 413, then the server works', async (t) => {
    const socket = await connect(port)
    t.teardown(() => { socket.destroy() })
    const response = readResponse(socket)
    let answered = false
    response.then(() => { answered = true }, () => {})

    await write(socket, postHead('/graphql', oversize.headers, oversize.payload.length))
    // eslint-disable-next-line no-unmodified-loop-condition -- set by the response, meanwhile
    for (let at = 0; at < oversize.payload.length && !answered; at += 1024) {
      await write(socket, oversize.payload.subarray(at, at + 1024))
    }
    const { statusCode, headers, body } = await response
    t.equal(statusCode, 413)
    t.equal(headers.connection, 'close')
    t.match(JSON.parse(body), { data: null, errors: [{ message: /larger than the limit of 4096 bytes/, extensions: { code: 'PAYLOAD_TOO_LARGE' } }] })
    await closed(socket)
    t.pass('the server closed the connection')
    await assertServerWorks(t)
  })

  // SRC BUG: the 413 is only sent once the whole oversize file part has arrived (see the report):
  // a client that stalls (or is slow) after crossing the limit never gets its answer.
  t.test('an over-limit file whose body never ends still gets its 413', async (t) => {
    const socket = await connect(port)
    t.teardown(() => { socket.destroy() })
    const response = readResponse(socket)
    await write(socket, postHead('/graphql', oversize.headers, oversize.payload.length))
    await write(socket, oversize.payload.subarray(0, 16 * 1024)) // operations, map and ~15 KB of file, then nothing
    try {
      const { statusCode, body } = await response
      t.equal(statusCode, 413)
      t.match(JSON.parse(body), { errors: [{ extensions: { code: 'PAYLOAD_TOO_LARGE' } }] })
    } catch (err) {
      t.fail(`no answer: ${(err as Error).message}`)
    }
    socket.destroy()
    await assertServerWorks(t)
  })

  t.test('a client that drops its socket mid-upload does not hurt the server', async (t) => {
    const upload = await identifyBody(await jpeg(800, 600))
    const serverSide = nextServerSocket()
    const socket = await connect(port)
    await write(socket, postHead('/graphql', upload.headers, upload.payload.length))
    await write(socket, upload.payload.subarray(0, upload.payload.length >> 1))
    socket.destroy()
    await closed(await serverSide)
    t.pass('the server let go of the connection')
    await assertServerWorks(t)
  })

  t.test('a refused CSRF multipart request with a large body is answered', async (t) => {
    const upload = await identifyBody(randomBytes(256 * 1024))
    const headers = { 'content-type': upload.headers['content-type'] as string }
    const answer = await fetchJson('/graphql', { method: 'POST', headers, body: new Uint8Array(upload.payload) })
    assertError(t, answer, 400, 'BAD_REQUEST', /cross-site request forgery/)
    await assertServerWorks(t)
  })

  t.test('concurrent distinct uploads never cross', async (t) => {
    const images = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const width = 50 + i * 11
      const height = 40 + i * 3
      return { width, height, buffer: await png(width, height) }
    }))
    const answers = await Promise.all(images.map(async ({ buffer }) => {
      const upload = await identifyBody(buffer)
      return await fetchJson('/graphql', { method: 'POST', headers: upload.headers, body: new Uint8Array(upload.payload) })
    }))
    answers.forEach((answer, i) => {
      const image = images[i] as typeof images[number]
      t.same(answer.body.data?.identifyVehicle?.image, {
        sha256: sha256(image.buffer), bytes: image.buffer.length, mimeType: 'image/png', width: image.width, height: image.height
      }, `upload ${i} got its own answer`)
    })
  })
})

t.test('client-chosen names are echoed bounded: field names, map keys and paths of any length', async (t) => {
  const lines: string[] = []
  const logger = pino({ level: 'debug' }, { write: (line: string) => { lines.push(line) } })
  const app = await buildTestApp(t, { logger })
  const long = 'x'.repeat(80_000)
  const cases: Array<[name: string, parts: Part[]]> = [
    ['a long file field name', [['operations', operations()], ['map', MAP], [long, photo, 'a.jpg']]],
    ['a long field name first', [[long, operations()]]],
    ['a long map key', [['operations', operations()], ['map', JSON.stringify({ [long]: ['variables.image'] })], filePart()]],
    ['a long map path', [['operations', operations()], ['map', JSON.stringify({ 0: [long] })], filePart()]],
    ['control characters', [['operations', operations()], ['map', MAP], ['\u001b[31mred\r\nX-Injected: 1', photo, 'a.jpg']]]
  ]
  for (const [name, parts] of cases) {
    const res = await app.inject({ method: 'POST', url: '/graphql', ...(await encodeParts(parts)) })
    t.equal(res.statusCode, 400, name)
    const message: string = res.json().errors[0].message
    t.ok(message.length < 300, `${name}: a ${message.length}-character message`)
    // eslint-disable-next-line no-control-regex -- looking for exactly those
    t.notMatch(message, /[\u0000-\u001f]/, `${name}: no control characters`)
  }
  t.notOk(lines.some(line => line.length > 4000), 'no log line carries the long name')
})
