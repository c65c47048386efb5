// Debian's Chromium driven by playwright-core, for the browser tests: launched with the flags this machine needs,
// nothing allowed off loopback, page errors and CSP violations collected, axe-core's accessibility check.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import type { Test } from 'tap'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'

export const WAIT_MS = 20_000

export async function launchChromium (t: Test): Promise<Browser> {
  // A missing Chromium fails here: it is not skipped.
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: WAIT_MS
  })
  t.teardown(() => browser.close())
  return browser
}

/** Requests to anything but loopback are aborted and recorded: the app must need nothing from outside. */
export async function loopbackOnly (context: BrowserContext): Promise<string[]> {
  const external: string[] = []
  await context.route(url => !['127.0.0.1', 'localhost'].includes(url.hostname), async route => {
    external.push(route.request().url())
    await route.abort()
  })
  return external
}

/** Page errors, console errors and CSP violations, as they happen. */
export async function watchErrors (page: Page): Promise<string[]> {
  const errors: string[] = []
  page.on('pageerror', err => errors.push(`pageerror: ${err.message}`))
  // A request failing while the test has cut the network is expected: the app's own handling is what is tested.
  const expected = /Failed to load resource|ERR_INTERNET_DISCONNECTED|net::ERR/
  page.on('console', msg => { if (msg.type() === 'error' && !expected.test(msg.text())) errors.push(`console: ${msg.text()}`) })
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', event => {
      console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`)
    })
  })
  return errors
}

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')

/** axe-core in the page (evaluated through the devtools protocol, so the page's CSP does not apply): serious and critical violations. */
export async function seriousViolations (page: Page): Promise<string[]> {
  await page.evaluate(AXE)
  const violations = await page.evaluate(async () => {
    interface Violation { id: string, impact: string | null, nodes: Array<{ target: unknown }> }
    type Axe = { run: (context: Document, options: object) => Promise<{ violations: Violation[] }> }
    const axe = (globalThis as unknown as { axe: Axe }).axe
    const result = await axe.run(document, { resultTypes: ['violations'] })
    return result.violations.map(v => ({ id: v.id, impact: v.impact, targets: v.nodes.map(n => JSON.stringify(n.target)).slice(0, 3) }))
  })
  return violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => `${v.id} (${v.impact}): ${v.targets.join(', ')}`)
}

/** Where the tests' screenshots go (not committed): SCREENSHOT_DIR, else a folder in the system's temp. */
export function screenshotDir (): string {
  const dir = process.env.SCREENSHOT_DIR ?? join(tmpdir(), 'agrivision-screenshots')
  mkdirSync(dir, { recursive: true })
  return dir
}

/** The screen at a phone's size and at a desktop's. */
export async function screenshots (page: Page, name: string): Promise<void> {
  const dir = screenshotDir()
  const phone = page.viewportSize()
  await page.screenshot({ path: join(dir, `${name}-phone.png`), fullPage: true })
  await page.setViewportSize({ width: 1280, height: 800 })
  await page.screenshot({ path: join(dir, `${name}-desktop.png`), fullPage: true })
  if (phone !== null) await page.setViewportSize(phone)
}

export const PHONE = { viewport: { width: 412, height: 915 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true }
