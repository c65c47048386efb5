// What one GraphQL request may cost: fragment amplification, aliases, tokens, nesting, body size,
// malformed bodies, and the per-caller budget for every operation. Each attack in several shapes.
import t from 'tap'
import { getIntrospectionQuery, parse } from 'graphql'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from './helper.ts'
import { sendJson } from './support/http.ts'
import { measureOperations } from '../src/graphql/cost.ts'

async function query (app: FastifyInstance, payload: unknown, headers: Record<string, string> = {}) {
  const answer = await sendJson(app, payload, headers)
  return { ...answer, status: answer.statusCode }
}

/** n fragments, each spreading the next twice: 2^n fields once expanded, n lines of text. */
function doublingChain (levels: number, spread: (next: string) => string, leaf: string, on = 'VisionStatus', prefix = 'F'): string {
  let text = `fragment ${prefix}${levels} on ${on} { ${leaf} }\n`
  for (let i = levels - 1; i >= 0; i--) text += `fragment ${prefix}${i} on ${on} { ${spread(`${prefix}${i + 1}`)} }\n`
  return text
}

t.test('cost is measured in one pass: figures for fragment chains, aliases and depth', async t => {
  const chain = parse(`{ vision { ...F0 } } ${doublingChain(40, next => `...${next} ...${next}`, 'ready')}`)
  const [op] = measureOperations(chain)
  t.equal(op?.fields, 1 + 2 ** 40, '2^40 fields counted without walking them')

  const aliases = parse('query Q { a: vision { ready } b: vision { ready backend } }')
  t.same(measureOperations(aliases), [{ name: 'Q', fields: 5, identifications: 0, depth: 1 }])

  const inline = parse('{ ... on Query { vision { ... on VisionStatus { ready } } } }')
  t.equal(measureOperations(inline)[0]?.depth, 1, 'inline fragments add no depth')

  const cyclic = parse('{ ...A } fragment A on Query { vision { ready } ...B } fragment B on Query { ...A }')
  t.equal(measureOperations(cyclic)[0]?.fields, 2, 'a cycle is counted once (validation reports it)')

  const identifications = parse(`mutation { ...M0 } ${doublingChain(30, next => `...${next} ...${next}`, 'identifyVehicle(image: null) { id }', 'Mutation', 'M')}`)
  t.equal(measureOperations(identifications)[0]?.identifications, 2 ** 30)
})

t.test('fragment amplification is refused before validation, whatever its shape', async t => {
  const app = await buildTestApp(t)
  const shapes = {
    'spreads twice': `{ vision { ...F0 } } ${doublingChain(30, next => `...${next} ...${next}`, 'ready')}`,
    'aliased nested fields': `{ __schema { queryType { ...F0 } } } ${doublingChain(30, next => `a: ofType { ...${next} } b: ofType { ...${next} }`, 'name', '__Type')}`,
    'through inline fragments': `{ vision { ...F0 } } ${doublingChain(30, next => `... on VisionStatus { ...${next} } ... { ...${next} }`, 'ready')}`,
    'three at a time': `{ vision { ...F0 } } ${doublingChain(20, next => `...${next} ...${next} ...${next}`, 'ready backend')}`
  }
  for (const [shape, text] of Object.entries(shapes)) {
    const res = await query(app, { query: text })
    t.equal(res.status, 400, shape)
    t.equal(res.body.errors?.[0]?.extensions.code, 'GRAPHQL_VALIDATION_FAILED', shape)
    t.match(res.body.errors?.[0]?.message, /at most 500/, shape)
  }
  t.equal((await app.inject('/health/live')).statusCode, 200)
})

t.test('identifications are counted through amplifying fragments, linearly', async t => {
  const app = await buildTestApp(t)
  const text = `mutation($i: Upload!) { ...M0 } ${doublingChain(28, next => `...${next} ...${next}`, 'identifyVehicle(image: $i) { id }', 'Mutation', 'M')}`
  const res = await query(app, { query: text, variables: { i: null } })
  t.equal(res.status, 400)
  t.match(res.body.errors?.[0]?.message, /At most 1 identifyVehicle per operation \(this one asks for 268435456\)/)
})

t.test('aliases and fields per operation: GRAPHQL_MAX_FIELDS', async t => {
  const app = await buildTestApp(t, { env: { GRAPHQL_MAX_FIELDS: '50' } })
  const flat = `{ ${Array.from({ length: 60 }, (_, i) => `a${i}: __typename`).join(' ')} }`
  const nested = `{ ${Array.from({ length: 20 }, (_, i) => `v${i}: vision { ready backend }`).join(' ')} }`
  const viaFragment = `{ ${Array.from({ length: 20 }, (_, i) => `v${i}: vision { ...S }`).join(' ')} } fragment S on VisionStatus { ready deployment }`
  for (const [shape, text] of Object.entries({ flat, nested, viaFragment })) {
    const res = await query(app, { query: text })
    t.equal(res.status, 400, shape)
    t.match(res.body.errors?.[0]?.message, /selects 60 fields .* at most 50/, shape)
  }
  const ok = await query(app, { query: `{ ${Array.from({ length: 49 }, (_, i) => `a${i}: __typename`).join(' ')} }` })
  t.equal(ok.status, 200, 'just under the limit runs')
})

t.test('GraphiQL\'s introspection query fits every default limit', async t => {
  const app = await buildTestApp(t)
  const introspection = getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true, specifiedByUrl: true })
  const fields = measureOperations(parse(introspection))[0]?.fields
  t.ok(fields !== undefined && fields < 500, `${fields} fields`)
  const res = await query(app, { query: getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true, specifiedByUrl: true }) })
  t.equal(res.status, 200)
})

t.test('the parser is bounded: token limit, and nesting never overflows the stack into a 500', async t => {
  const app = await buildTestApp(t)
  const manyTokens = `{ ${'__typename '.repeat(3000)}}`
  const manyArgs = `{ vision { ready } } query Q($a: [Int] = [${'1,'.repeat(3000)}]) { __typename }`
  for (const [shape, text] of Object.entries({ manyTokens, manyArgs })) {
    const res = await query(app, { query: text })
    t.equal(res.status, 400, shape)
    t.equal(res.body.errors?.[0]?.extensions.code, 'GRAPHQL_PARSE_FAILED', shape)
    t.match(res.body.errors?.[0]?.message, /more that 2000 tokens/, shape)
  }

  // With the token limit raised far past its default, deep nesting reaches the stack: still a 400.
  const raised = await buildTestApp(t, { env: { GRAPHQL_MAX_TOKENS: '100000', GRAPHQL_MAX_BODY_BYTES: '2000000' } })
  const deep = {
    inlineFragments: `{ ${'... on Query { '.repeat(6000)}__typename${' }'.repeat(6000)} }`,
    fields: `{ vision ${'{ ready '.repeat(8000)}${'}'.repeat(8000)} }`,
    listValues: `query Q($a: [Int] = ${'['.repeat(20000)}${']'.repeat(20000)}) { __typename }`
  }
  for (const [shape, text] of Object.entries(deep)) {
    const res = await query(raised, { query: text })
    t.equal(res.status, 400, shape)
    t.match(res.body.errors?.[0]?.extensions.code, /^GRAPHQL_(VALIDATION|PARSE)_FAILED$/, shape)
  }
})

t.test('JSON bodies: size limit, and malformed fields are 400s with a code, never 500s', async t => {
  const app = await buildTestApp(t, { env: { GRAPHQL_MAX_BODY_BYTES: '4096' } })
  const big = await app.inject({
    method: 'POST',
    url: '/graphql',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ query: '{ vision { ready } }', variables: { pad: 'x'.repeat(5000) } })
  })
  t.equal(big.statusCode, 413)
  t.equal(big.json().errors[0].extensions.code, 'PAYLOAD_TOO_LARGE')

  const bodies: unknown[] = [
    { query: 1 }, { query: null }, { query: {} }, { query: [] }, { query: true },
    { query: '{ vision { ready } }', variables: 'x' },
    { query: '{ vision { ready } }', operationName: 5 },
    { query: JSON.stringify(parse('{ vision { ready } }')) }, // mercurius would read it as an AST
    { query: '"{\\"kind\\":\\"Document\\",\\"definitions\\":[]}"' },
    {}
  ]
  for (const body of bodies) {
    const res = await query(app, body)
    t.equal(res.status, 400, JSON.stringify(body).slice(0, 60))
    t.match(res.body.errors?.[0]?.extensions.code, /^(BAD_REQUEST|GRAPHQL_PARSE_FAILED|GRAPHQL_VALIDATION_FAILED|BAD_USER_INPUT)$/)
  }
})

t.test('every operation spends a per-caller budget: GRAPHQL_RATE_LIMIT_PER_MINUTE, apart from identifications', async t => {
  const app = await buildTestApp(t, { env: { GRAPHQL_RATE_LIMIT_PER_MINUTE: '3', RATE_LIMIT_PER_MINUTE: '5' } })
  for (let i = 0; i < 3; i++) t.equal((await query(app, { query: '{ vision { ready } }' })).status, 200)
  const limited = await query(app, { query: '{ vision { ready } }' })
  t.equal(limited.status, 429)
  t.equal(limited.body.errors?.[0]?.extensions.code, 'RATE_LIMITED')
  t.match(limited.body.errors?.[0]?.message, /Too many GraphQL requests: at most 3 per minute/)
  t.ok(Number(limited.headers['retry-after']) >= 1)
  const invalid = await query(app, { query: '{ nope }' })
  t.equal(invalid.status, 429, 'invalid queries count too: they cost parsing')
  const get = await app.inject({ method: 'GET', url: '/graphql?query=%7Bvision%7Bready%7D%7D' })
  t.equal(get.statusCode, 429, 'GET requests count too')
  const elsewhere = await app.inject({ method: 'POST', url: '/graphql', remoteAddress: '10.9.8.7', payload: { query: '{ vision { ready } }' } })
  t.equal(elsewhere.statusCode, 200, 'another caller has its own budget')
})

t.test('a budget of 0 is no limit', async t => {
  const app = await buildTestApp(t, { env: { GRAPHQL_RATE_LIMIT_PER_MINUTE: '0', RATE_LIMIT_PER_MINUTE: '0' } })
  for (let i = 0; i < 50; i++) {
    const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query: '{ vision { ready } }' } })
    if (res.statusCode !== 200) { t.fail(`request ${i}: ${res.statusCode}`); return }
    t.notOk(res.headers['x-ratelimit-limit'], 'no rate-limit headers')
  }
  t.pass('50 requests, none limited')
})

t.test('GET requests: unknown or ambiguous operations and mutations are coded 4xx, never 500', async t => {
  const app = await buildTestApp(t)
  const get = (params: Record<string, string>) => app.inject({
    method: 'GET', url: `/graphql?${new URLSearchParams(params)}`, headers: { 'graphql-require-preflight': '1' }
  })
  const cases: Array<[params: Record<string, string>, status: number, code: string]> = [
    [{ query: '{ vision { ready } }', operationName: '' }, 200, 'OK'],
    [{ query: '{ vision { ready } }', operationName: 'Missing' }, 400, 'GRAPHQL_VALIDATION_FAILED'],
    [{ query: 'query A { __typename } query B { __typename }' }, 400, 'GRAPHQL_VALIDATION_FAILED'],
    [{ query: 'query A { __typename } query B { __typename }', operationName: 'B' }, 200, 'OK'],
    [{ query: 'mutation { __typename }' }, 405, 'BAD_REQUEST'],
    [{ query: 'query A { __typename } mutation M { __typename }', operationName: 'M' }, 405, 'BAD_REQUEST'],
    [{ query: '{ vision { ' }, 400, 'GRAPHQL_PARSE_FAILED']
  ]
  for (const [params, status, code] of cases) {
    const res = await get(params)
    t.equal(res.statusCode, status, JSON.stringify(params))
    t.equal(res.json().errors?.[0]?.extensions?.code ?? 'OK', code, JSON.stringify(params))
    if (status === 405) t.equal(res.headers.allow, 'POST')
  }
})

t.test('a subscription sent over HTTP is a 400 that says where subscriptions are served, never a 500', async t => {
  const app = await buildTestApp(t)
  const subscription = 'subscription Live { identificationCompleted { id } }'
  const shapes: Array<[string, () => Promise<{ status: number, raw: string }>]> = [
    ['POST, the only operation', async () => await query(app, { query: subscription })],
    ['POST, chosen by operationName', async () => await query(app, { query: `query Q { vision { ready } } ${subscription}`, operationName: 'Live' })],
    ['GET', async () => {
      const res = await app.inject({ method: 'GET', url: `/graphql?query=${encodeURIComponent(subscription)}`, headers: { 'graphql-require-preflight': '1' } })
      return { status: res.statusCode, raw: res.body }
    }]
  ]
  for (const [shape, send] of shapes) {
    const { status, raw } = await send()
    t.equal(status, 400, `${shape}: 400`)
    const error = JSON.parse(raw).errors?.[0]
    t.equal(error?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED', `${shape}: coded`)
    t.match(error?.message, /WebSocket/, `${shape}: says where subscriptions are served`)
  }
  // The query beside it in the same document still runs when it is the one asked for.
  const { status, raw } = await query(app, { query: `query Q { vision { ready } } ${subscription}`, operationName: 'Q' })
  t.equal(status, 200, 'the query of the same document runs')
  t.equal(JSON.parse(raw).data?.vision?.ready, true)
})
