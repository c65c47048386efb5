// A throwaway certificate authority for TLS tests, made with openssl: the CA and one server certificate for
// 127.0.0.1 and localhost. The one place tests make certificates (Redis, PostgreSQL, a CA trusted by mistake).
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'

export interface TestCa {
  dir: string
  /** The CA certificate (PEM file), what a client trusts. */
  caFile: string
  /** The server's certificate and key (PEM files), signed by the CA, for 127.0.0.1 and localhost. */
  certFile: string
  keyFile: string
  ca: string
  cert: string
  key: string
}

/** A CA and its server certificate in a folder of their own, removed when the test ends. */
export function makeTestCa (t: Test, commonName = 'agrivision-test-server'): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'agrivision-test-ca-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return writeTestCa(dir, commonName)
}

/**
 * The same in `dir` (its owner removes it): ca.pem and ca.key, server.pem and server.key. EC keys (P-256): quicker
 * to make than RSA on a loaded machine, and every client here takes them.
 */
export function writeTestCa (dir: string, commonName = 'agrivision-test-server', caName = 'agrivision-test-ca'): TestCa {
  const file = (name: string): string => join(dir, name)
  const openssl = (...args: string[]): void => { execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] }) }
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl('req', '-x509', ...newKey, '-days', '2', '-subj', `/CN=${caName}`, '-keyout', file('ca.key'), '-out', file('ca.pem'))
  openssl('req', ...newKey, '-subj', `/CN=${commonName}`, '-keyout', file('server.key'), '-out', file('server.csr'))
  writeFileSync(file('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n')
  openssl('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-days', '2',
    '-extfile', file('server.ext'), '-out', file('server.pem'))
  return {
    dir,
    caFile: file('ca.pem'),
    certFile: file('server.pem'),
    keyFile: file('server.key'),
    ca: readFileSync(file('ca.pem'), 'utf8'),
    cert: readFileSync(file('server.pem'), 'utf8'),
    key: readFileSync(file('server.key'), 'utf8')
  }
}
