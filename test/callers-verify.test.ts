// Caller verification as a pure function: the same credentials from HTTP headers or from a
// WebSocket connection_init payload give the same caller or the same typed refusal.
import t from 'tap'
import { pino } from 'pino'
import { ANONYMOUS, requireRole } from '../src/callers/caller.ts'
import { newApiKey } from '../src/callers/api-keys.ts'
import { createCallerVerifier, credentialsFromHeaders, credentialsFromPayload } from '../src/callers/verify.ts'
import { ForbiddenError, UnauthenticatedError } from '../src/errors.ts'
import { testConfig } from './helper.ts'

const log = pino({ level: 'silent' })

t.test('AUTH_MODE=none: everyone is anonymous, with the Identify role only', async t => {
  const verify = createCallerVerifier(testConfig().callers, log)
  t.equal(await verify({}), ANONYMOUS)
  t.ok(ANONYMOUS.roles.has('Identify'))
  t.throws(() => requireRole(ANONYMOUS, 'Admin'), ForbiddenError)
})

t.test('API keys: headers and connection_init payloads are read alike', async t => {
  const dashboard = newApiKey('dashboard')
  const verify = createCallerVerifier(testConfig({ AUTH_MODE: 'apikey', API_KEY_HASHES: dashboard.entry }).callers, log)
  const fromHeaders = await verify(credentialsFromHeaders({ 'x-api-key': dashboard.key }))
  const fromPayload = await verify(credentialsFromPayload({ 'x-api-key': dashboard.key }))
  t.same(fromHeaders, fromPayload)
  t.match(fromHeaders, { kind: 'apikey', id: 'dashboard' })
  t.ok(fromHeaders.roles.has('Identify'))
  t.notOk(fromHeaders.roles.has('Admin'))

  for (const credentials of [{}, credentialsFromPayload(null), credentialsFromPayload('x'), credentialsFromPayload({ 'x-api-key': 'agv_wrong' }), { apiKey: ['a', 'b'] }]) {
    const err = await verify(credentials).catch((e: unknown) => e)
    t.ok(err instanceof UnauthenticatedError, JSON.stringify(credentials))
    t.match((err as UnauthenticatedError).challenge, /^ApiKey realm="agrivision"$/)
  }
  const reader = newApiKey('reader')
  const withRoles = createCallerVerifier(testConfig({ AUTH_MODE: 'apikey', API_KEY_HASHES: `${reader.entry}:VehicleIdentification.ReadAll` }).callers, log)
  const readOnly = await withRoles({ apiKey: reader.key })
  t.same([...readOnly.roles], ['ReadAll'], 'a key carries the roles its entry names')
  t.throws(() => requireRole(readOnly, 'Identify'), ForbiddenError, 'and no others')

  const wrongScheme = await verify(credentialsFromPayload({ authorization: 'Bearer abc' })).catch((e: unknown) => e) as UnauthenticatedError
  t.match(wrongScheme.message, /takes an API key in the x-api-key header/)
})
