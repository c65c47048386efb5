// The field app's Microsoft Entra ID sign-in, end to end in Chromium with the real @azure/msal-browser: Entra's
// endpoints (OpenID metadata, instance discovery, authorize, token) are answered by this test through Playwright's
// request routing (nothing leaves the machine), the authorization code is only exchanged with the PKCE verifier of
// the challenge MSAL sent, and the access token it gets is one the service verifies against a loopback JWKS. Then
// the signed-in phone identifies a photo with that token.
import { createHash, randomUUID } from 'node:crypto'
import t from 'tap'
import sharp from 'sharp'
import type { Route } from 'playwright-core'
import { buildTestApp } from './helper.ts'
import { JwksServer, sign, TENANT_ID, userClaims, v2Issuer, USER_OID } from './support/jwks.ts'
import { launchChromium, loopbackOnly, PHONE, seriousViolations, WAIT_MS, watchErrors } from './support/browser.ts'

const SPA_CLIENT_ID = 'cccccccc-1111-2222-3333-444444444444'
const SCOPE = 'api://agrivision/VehicleIdentification.Identify'
const AUTHORITY = `https://login.microsoftonline.com/${TENANT_ID}`

t.test('Entra sign-in with MSAL (authorization code + PKCE), then an identification with the token', { timeout: 120_000 }, async t => {
  const jwks = await new JwksServer().start()
  t.teardown(() => jwks.close())
  const key = await jwks.addKey()
  const app = await buildTestApp(t, {
    env: {
      AUTH_MODE: 'entra',
      ENTRA_TENANT_ID: TENANT_ID,
      ENTRA_AUDIENCE: 'api://agrivision',
      ENTRA_JWKS_URI: jwks.uri,
      WEB_APP_ENTRA_CLIENT_ID: SPA_CLIENT_ID,
      WEB_APP_ENTRA_SCOPES: SCOPE
    }
  })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })

  const browser = await launchChromium(t)
  const context = await browser.newContext({ ...PHONE, locale: 'en-US' })
  context.setDefaultTimeout(WAIT_MS)
  const external = await loopbackOnly(context)

  // Entra, as far as the browser can tell. Registered after loopbackOnly: Playwright tries the latest route first.
  const authorizations: URLSearchParams[] = []
  const exchanges: URLSearchParams[] = []
  const codes = new Map<string, { challenge: string, nonce: string }>()
  const clientInfo = Buffer.from(JSON.stringify({ uid: USER_OID, utid: TENANT_ID })).toString('base64url')
  const json = async (route: Route, body: unknown): Promise<void> => {
    await route.fulfill({ status: 200, contentType: 'application/json', headers: { 'access-control-allow-origin': '*' }, body: JSON.stringify(body) })
  }
  await context.route('https://login.microsoftonline.com/**', async route => {
    const url = new URL(route.request().url())
    if (url.pathname.endsWith('/.well-known/openid-configuration')) {
      return await json(route, {
        issuer: v2Issuer(),
        authorization_endpoint: `${AUTHORITY}/oauth2/v2.0/authorize`,
        token_endpoint: `${AUTHORITY}/oauth2/v2.0/token`,
        end_session_endpoint: `${AUTHORITY}/oauth2/v2.0/logout`,
        jwks_uri: `${AUTHORITY}/discovery/v2.0/keys`,
        response_modes_supported: ['query', 'fragment', 'form_post'],
        code_challenge_methods_supported: ['S256']
      })
    }
    if (url.pathname.endsWith('/discovery/instance')) {
      return await json(route, {
        tenant_discovery_endpoint: `${AUTHORITY}/v2.0/.well-known/openid-configuration`,
        'api-version': '1.1',
        metadata: [{ preferred_network: 'login.microsoftonline.com', preferred_cache: 'login.windows.net', aliases: ['login.microsoftonline.com', 'login.windows.net'] }]
      })
    }
    if (url.pathname.endsWith('/oauth2/v2.0/authorize')) {
      const params = url.searchParams
      authorizations.push(params)
      const code = randomUUID()
      codes.set(code, { challenge: params.get('code_challenge') ?? '', nonce: params.get('nonce') ?? '' })
      const answer = new URLSearchParams({ code, state: params.get('state') ?? '', client_info: clientInfo })
      const separator = params.get('response_mode') === 'query' ? '?' : '#'
      return await route.fulfill({ status: 302, headers: { location: `${params.get('redirect_uri')}${separator}${answer}` } })
    }
    if (url.pathname.endsWith('/oauth2/v2.0/token') && route.request().method() === 'POST') {
      const form = new URLSearchParams(route.request().postData() ?? '')
      exchanges.push(form)
      const issued = codes.get(form.get('code') ?? '')
      const verifier = form.get('code_verifier') ?? ''
      if (issued === undefined || createHash('sha256').update(verifier).digest('base64url') !== issued.challenge) {
        return await route.fulfill({ status: 400, contentType: 'application/json', headers: { 'access-control-allow-origin': '*' }, body: '{"error":"invalid_grant"}' })
      }
      const now = Math.floor(Date.now() / 1000)
      const accessToken = await sign(key, userClaims({ azp: SPA_CLIENT_ID }))
      const idToken = await sign(key, {
        aud: SPA_CLIENT_ID,
        iss: v2Issuer(),
        tid: TENANT_ID,
        oid: USER_OID,
        sub: 'pairwise',
        nonce: issued.nonce,
        iat: now - 10,
        nbf: now - 10,
        exp: now + 3600,
        ver: '2.0',
        name: 'Test Farmer',
        preferred_username: 'farmer@example.com'
      })
      return await json(route, {
        token_type: 'Bearer',
        scope: `${SCOPE} openid profile offline_access`,
        expires_in: 3600,
        ext_expires_in: 3600,
        access_token: accessToken,
        id_token: idToken,
        client_info: clientInfo
      })
    }
    await route.fulfill({ status: 404, body: 'not part of this fake' })
  })

  const page = await context.newPage()
  const errors = await watchErrors(page)
  await page.goto(base)
  const signIn = page.getByRole('button', { name: 'Sign in with Microsoft' })
  await signIn.waitFor()
  t.equal(await page.locator('#api-key').count(), 0, 'AUTH_MODE=entra: no API key field')
  t.strictSame(await seriousViolations(page), [], 'sign-in: no serious or critical accessibility violation')
  await signIn.click()

  await page.locator('.capture').waitFor()
  t.equal(authorizations.length, 1, 'one authorization request')
  const authorize = authorizations[0]!
  t.equal(authorize.get('client_id'), SPA_CLIENT_ID)
  t.equal(authorize.get('response_type'), 'code', 'authorization code flow')
  t.equal(authorize.get('code_challenge_method'), 'S256', 'with PKCE')
  t.match(authorize.get('scope'), new RegExp(SCOPE.replace(/[./]/g, '\\$&')), 'asking for the API scope')
  t.equal(authorize.get('redirect_uri'), `${base}/`)
  t.equal(exchanges.length, 1, 'the code was exchanged once, with the verifier of its challenge')
  t.match(await page.locator('header').innerText(), /Sign out/, 'signed in')

  // The token MSAL got is what the phone sends: the service verifies it and answers.
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.locator('label.button').nth(1).click()])
  await chooser.setFiles({ name: 'tractor.jpg', mimeType: 'image/jpeg', buffer: await sharp({ create: { width: 800, height: 600, channels: 3, background: '#3a6' } }).jpeg().toBuffer() })
  await page.getByTestId('result').waitFor()
  await app.history!.flushed() // written off the request path
  const stored = await app.inject({ method: 'POST', url: '/graphql', headers: { authorization: `Bearer ${await sign(key, userClaims())}` }, payload: { query: '{ identifications { edges { node { callerId } } } }' } })
  t.strictSame(stored.json().data.identifications.edges.map((e: { node: { callerId: string } }) => e.node.callerId), [USER_OID], 'identified as the signed-in user')

  // A photo queued offline belongs to this account (its homeAccountId, nothing secret) and is sent once back online.
  await context.setOffline(true)
  const [offlineChooser] = await Promise.all([page.waitForEvent('filechooser'), page.locator('label.button').nth(1).click()])
  await offlineChooser.setFiles({ name: 'offline.jpg', mimeType: 'image/jpeg', buffer: await sharp({ create: { width: 800, height: 600, channels: 3, background: '#6a3' } }).jpeg().toBuffer() })
  await page.getByTestId('queue').waitFor()
  const owners = await page.evaluate(async () => await new Promise<string[]>((resolve, reject) => {
    const open = indexedDB.open('agrivision')
    open.onerror = () => { reject(open.error) }
    open.onsuccess = () => {
      const all = open.result.transaction('queue').objectStore('queue').getAll()
      all.onsuccess = () => { resolve(all.result.map((entry: { owner?: string }) => JSON.stringify(entry.owner))) }
    }
  }))
  t.strictSame(owners, [JSON.stringify(`entra:${USER_OID}.${TENANT_ID}`)], 'the queued photo\'s owner is the account\'s homeAccountId')
  await context.setOffline(false)
  await page.getByTestId('queue').waitFor({ state: 'detached' })
  await app.history!.flushed()
  const after = await app.inject({ method: 'POST', url: '/graphql', headers: { authorization: `Bearer ${await sign(key, userClaims())}` }, payload: { query: '{ identifications { edges { node { callerId } } } }' } })
  t.equal(after.json().data.identifications.edges.length, 2, 'sent once back online')
  t.strictSame(errors, [], 'no page error, console error or CSP violation')
  t.strictSame(external, [], 'nothing else requested off loopback')
})
