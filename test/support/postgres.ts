// A real, throwaway PostgreSQL server for tests (Debian's postgresql package, installed by .ci/run), as
// the Redis tests get a real redis-server: a fresh cluster in a temporary directory, listening only on
// 127.0.0.1 on a free port (its unix socket in that directory), tuned for speed (no fsync: nothing in
// it is meant to survive). It stops by itself: stop(), the test's teardown, this process's exit, and a
// small shell sidecar that stops it when this process is gone however it died (tap's timeout, SIGKILL).
// With `tls: true` it speaks TLS only, as Azure Database for PostgreSQL does: a test CA made with openssl, a server
// certificate for 127.0.0.1 and localhost, `hostssl … scram-sha-256` and `hostnossl … reject`; the superuser
// connects over the Unix socket (`url`), the tests' roles over TCP with a password (setRolePassword: the token).
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { accessSync, chmodSync, constants, chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { Client } from 'pg'
import type { Test } from 'tap'
import { freePort } from './server-process.ts'
import { writeTestCa } from './test-ca.ts'

export interface Postgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`: superuser `postgres`, no password (trust). */
  url: string
  /** Stops the server (immediate shutdown) and removes its directory; safe to call more than once. */
  stop: () => Promise<void>
  /**
   * Stops the server (fast shutdown: connections are closed, clients see the database go away) and keeps its
   * data directory, to start again with resume(): a database outage.
   */
  pause: () => Promise<void>
  /** Starts the paused server again on the same data directory and port (the same url); nothing if it runs. */
  resume: () => Promise<void>
  /** With `tls`: the test CA and the URLs to reach the server over TCP (TLS, password); null otherwise. */
  tls: PostgresTls | null
  /** What the server printed (connections, authentication failures with `tls`), the last 100-200 kB. */
  serverLog: () => string
}

export interface PostgresTls {
  /** The test CA's certificate (PEM file) that signed the server's. */
  caFile: string
  /** `postgres://<user>@<host>:<port>/<database>` over TCP (TLS required, password = scram-sha-256). */
  tcpUrl: (user: string, options?: { host?: '127.0.0.1' | 'localhost', database?: string }) => string
}

export interface PostgresOptions {
  tls?: boolean
}

interface Binaries { initdb: string, pgCtl: string, postgres: string }

const INSTALL_HINT = 'install Debian\'s postgresql: apt-get install postgresql'
const STARTUP_TIMEOUT_MS = 30_000

function isExecutable (path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** Debian's /usr/lib/postgresql/<highest version>/bin, else initdb and pg_ctl from PATH. */
function findBinaries (): Binaries {
  let versions: string[] = []
  try {
    versions = readdirSync('/usr/lib/postgresql').filter(name => /^\d+(\.\d+)?$/.test(name)).sort((a, b) => Number(b) - Number(a))
  } catch {}
  for (const version of versions) {
    const bin = `/usr/lib/postgresql/${version}/bin`
    const found = { initdb: join(bin, 'initdb'), pgCtl: join(bin, 'pg_ctl'), postgres: join(bin, 'postgres') }
    if (Object.values(found).every(isExecutable)) return found
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const found = { initdb: join(dir, 'initdb'), pgCtl: join(dir, 'pg_ctl'), postgres: join(dir, 'postgres') }
    if (isExecutable(found.initdb) && isExecutable(found.pgCtl)) return isExecutable(found.postgres) ? found : { ...found, postgres: 'postgres' }
  }
  throw new Error(`No PostgreSQL server binaries (initdb, pg_ctl, postgres) in /usr/lib/postgresql/*/bin or on PATH: ${INSTALL_HINT}`)
}

interface RunAs { user: string, uid: number, gid: number }

/** initdb, postgres and pg_ctl refuse to run as root: then they run as `postgres` (or `nobody`). */
function unprivilegedUser (): RunAs | null {
  if (process.getuid?.() !== 0) return null
  for (const user of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim())
      const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim())
      return { user, uid, gid }
    } catch {}
  }
  throw new Error(`Running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as: ${INSTALL_HINT}`)
}

/** The command line that runs `command args` as `as` (setpriv execs, so the pid stays the program's). */
function commandLine (as: RunAs | null, command: string, args: string[]): [string, string[]] {
  if (as === null) return [command, args]
  if (isExecutable('/usr/bin/setpriv') || isExecutable('/bin/setpriv')) {
    return ['setpriv', [`--reuid=${as.uid}`, `--regid=${as.gid}`, '--clear-groups', '--', command, ...args]]
  }
  return ['runuser', ['-u', as.user, '--', command, ...args]]
}

/** No PG* variables from this process (PGDATA, PGPORT… would steer pg_ctl), and the C locale. */
function childEnv (): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C' }
}

async function run (as: RunAs | null, cwd: string, command: string, args: string[], timeout = 60_000): Promise<void> {
  const [file, argv] = commandLine(as, command, args)
  await new Promise<void>((resolve, reject) => {
    execFile(file, argv, { cwd, env: childEnv(), encoding: 'utf8', timeout }, (err, stdout, stderr) => {
      if (err === null) resolve()
      else reject(new Error(`${command} ${args.join(' ')} failed (${err.message.split('\n')[0]}):\n${stdout}${stderr}`))
    })
  })
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Waits for postgres to say it is ready; resolves false if it exited first (e.g. its port got taken). */
async function ready (child: ChildProcess, output: () => string): Promise<boolean> {
  return await new Promise<boolean>((resolve, reject) => {
    const timer = setTimeout(() => { cleanup(); reject(new Error(`postgres did not start within ${STARTUP_TIMEOUT_MS / 1000} s:\n${output()}`)) }, STARTUP_TIMEOUT_MS)
    const onData = (): void => { if (output().includes('database system is ready to accept connections')) { cleanup(); resolve(true) } }
    const onExit = (): void => { cleanup(); resolve(false) }
    const onError = (err: Error): void => { cleanup(); reject(err) }
    function cleanup (): void {
      clearTimeout(timer)
      child.stderr!.off('data', onData)
      child.off('exit', onExit)
      child.off('error', onError)
    }
    child.stderr!.on('data', onData)
    child.once('exit', onExit)
    child.once('error', onError)
    onData()
  })
}

// Stops the postmaster ($2) and removes the directory ($3) once the test process ($1) is gone. A zombie
// counts as gone (an orphan's reaper may be slow, or, in some containers, absent).
const SIDECAR = `
running () { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" != Z ]; }
while running "$1"; do sleep 0.5; done
kill -QUIT "$2" 2>/dev/null
i=0; while running "$2" && [ $i -lt 40 ]; do sleep 0.25; i=$((i+1)); done
kill -KILL "$2" 2>/dev/null
rm -rf "$3"
`

/**
 * Starts a fresh PostgreSQL server (superuser `postgres`, trust auth, UTF8, C locale) on 127.0.0.1 and
 * a free port; with `t`, it is stopped at the test's teardown.
 */
export async function startPostgres (t?: Test, options: PostgresOptions = {}): Promise<Postgres> {
  const bin = findBinaries()
  const as = unprivilegedUser()
  const dir = mkdtempSync(join(tmpdir(), 'pg-test-'))
  const data = join(dir, 'data')
  const tls = options.tls === true
  const removeDir = (): void => { rmSync(dir, { recursive: true, force: true }) }

  let child: ChildProcess | undefined
  let output = ''
  /** Runs the postmaster on `port` over `data`; true once it accepts connections, false if it exited first. */
  const launch = async (port: number): Promise<boolean> => {
    const [file, argv] = commandLine(as, bin.postgres, [
      '-D', data, '-p', String(port), '-k', dir,
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
      '-c', 'max_connections=100',
      ...(tls
        ? ['-c', 'ssl=on', '-c', `ssl_cert_file=${join(dir, 'server.pem')}`, '-c', `ssl_key_file=${join(dir, 'server.key')}`,
            '-c', 'log_connections=on', '-c', 'password_encryption=scram-sha-256']
        : [])
    ])
    output = ''
    child = spawn(file, argv, { cwd: dir, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
    const onData = (chunk: Buffer): void => {
      output += chunk.toString()
      if (output.length > 200_000) output = output.slice(-100_000)
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
    // It does not keep this process alive: a process that ends without stop() takes it along (onExit).
    child.unref()
    ;(child.stdout as unknown as { unref?: () => void }).unref?.()
    ;(child.stderr as unknown as { unref?: () => void }).unref?.()
    return await ready(child, () => output)
  }
  try {
    if (as !== null) chownSync(dir, as.uid, as.gid)
    await run(as, dir, bin.initdb, ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-locale', '--no-sync'])
    if (tls) {
      makeServerCertificate(dir, as)
      // The superuser over the Unix socket (the tests' admin); over TCP, TLS and a password only.
      writeFileSync(join(data, 'pg_hba.conf'), [
        'local all all trust',
        'hostssl all all 127.0.0.1/32 scram-sha-256',
        'hostnossl all all 0.0.0.0/0 reject',
        ''
      ].join('\n'))
      if (as !== null) chownSync(join(data, 'pg_hba.conf'), as.uid, as.gid)
    }

    for (let attempt = 1; ; attempt++) {
      const port = await freePort()
      if (await launch(port)) {
        return started(port)
      }
      // Someone took the port between freePort() and postgres' bind: try another.
      if (attempt >= 3 || !/could not (bind|create listen socket)|already in use/i.test(output)) {
        throw new Error(`postgres exited during startup:\n${output}`)
      }
    }
  } catch (err) {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    removeDir()
    throw err
  }

  function started (port: number): Postgres {
    // The postmaster's own pid (with runuser, the child is runuser), its exit, and the sidecar watching it: all
    // replaced when resume() starts it again.
    let pid = 0
    let exited: Promise<void> = Promise.resolve()
    let sidecar: ChildProcess | undefined
    const watch = (): void => {
      const server = child!
      pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0])
      exited = server.exitCode !== null || server.signalCode !== null ? Promise.resolve() : once(server, 'exit').then(() => {})
      sidecar = spawn('sh', ['-c', SIDECAR, 'pg-test-sidecar', String(process.pid), String(pid), dir], { stdio: 'ignore', detached: true })
      sidecar.on('error', () => {})
      sidecar.unref()
    }
    const unwatch = (): void => {
      try { sidecar?.kill('SIGKILL') } catch {}
    }
    watch()

    // A crashed or finished test process takes the server with it (synchronously: 'exit' allows no more).
    const onExit = (): void => {
      if (alive(pid)) {
        try { process.kill(pid, 'SIGQUIT') } catch {}
        const until = Date.now() + 3000
        const pause = new Int32Array(new SharedArrayBuffer(4))
        while (alive(pid) && Date.now() < until) Atomics.wait(pause, 0, 0, 25)
        try { process.kill(pid, 'SIGKILL') } catch {}
      }
      unwatch()
      try { removeDir() } catch {}
    }
    process.on('exit', onExit)

    /** pg_ctl stop in `mode`, then the postmaster's exit (bounded); SIGKILL if it is still there. */
    const shutDown = async (mode: 'immediate' | 'fast'): Promise<void> => {
      if (alive(pid)) {
        try {
          await run(as, dir, bin.pgCtl, ['stop', '-D', data, '-m', mode, '-w', '-t', '10', '-s'], 15_000)
        } catch {
          try { process.kill(pid, 'SIGKILL') } catch {}
        }
      }
      let timer: NodeJS.Timeout | undefined
      await Promise.race([exited, new Promise(resolve => { timer = setTimeout(resolve, 5000) })])
      clearTimeout(timer)
      if (alive(pid)) {
        try { process.kill(pid, 'SIGKILL') } catch {}
      }
    }

    let stopping: Promise<void> | undefined
    // pause() and resume() take turns on this chain; stop() waits for them.
    let turn: Promise<void> = Promise.resolve()
    const stop = async (): Promise<void> => {
      stopping ??= (async () => {
        process.off('exit', onExit)
        await turn.catch(() => {})
        unwatch()
        await shutDown('immediate')
        removeDir()
      })()
      return await stopping
    }
    const pause = async (): Promise<void> => {
      turn = turn.then(async () => {
        if (stopping !== undefined) throw new Error('postgres is stopped')
        unwatch()
        await shutDown('fast')
      })
      return await turn
    }
    const resume = async (): Promise<void> => {
      turn = turn.then(async () => {
        if (stopping !== undefined) throw new Error('postgres is stopped')
        if (alive(pid)) return
        if (!await launch(port)) throw new Error(`postgres did not start again on port ${port}:\n${output}`)
        watch()
      })
      return await turn
    }
    t?.teardown(stop)
    const url = tls
      ? `postgres://postgres@${encodeURIComponent(dir)}:${port}/postgres`
      : `postgres://postgres@127.0.0.1:${port}/postgres`
    const tcpUrl = (user: string, { host = '127.0.0.1', database = 'postgres' }: { host?: string, database?: string } = {}): string =>
      `postgres://${encodeURIComponent(user)}@${host}:${port}/${encodeURIComponent(database)}`
    return {
      url,
      stop,
      pause,
      resume,
      tls: tls ? { caFile: join(dir, 'ca.pem'), tcpUrl } : null,
      serverLog: () => output
    }
  }
}

/** Creates database `name` on the server at `url` and returns the URL that connects to it. */
export async function createDatabase (url: string, name: string): Promise<string> {
  const client = new Client({ connectionString: url })
  await client.connect()
  try {
    await client.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`)
  } finally {
    await client.end()
  }
  const target = new URL(url)
  target.pathname = `/${encodeURIComponent(name)}`
  return target.toString()
}

/** A test CA, and a server certificate it signed for 127.0.0.1 and localhost (key 0600, owned by the server's user). */
function makeServerCertificate (dir: string, as: RunAs | null): void {
  const { keyFile, certFile } = writeTestCa(dir, 'localhost', 'agrivision test CA')
  chmodSync(keyFile, 0o600)
  if (as !== null) {
    for (const file of [keyFile, certFile]) chownSync(file, as.uid, as.gid)
  }
}

/** Runs SQL as the superuser (over `url`: the Unix socket with `tls`). */
export async function asAdmin<T> (url: string, run: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url })
  await client.connect()
  try {
    return await run(client)
  } finally {
    await client.end()
  }
}

/** Quotes an identifier (a role named by an identity, with dashes) and a literal, for the statements below. */
export const ident = (name: string): string => `"${name.replaceAll('"', '""')}"`
export const literal = (value: string): string => `'${value.replaceAll("'", "''")}'`

/**
 * A role's password becomes `token`, valid until `expiresOnMs` (a login after that fails: 28P01), as Azure accepts a
 * token until its expiry. PostgreSQL checks it at login only: sessions outlive it (see the enforcer in the tests).
 * Seen here (PostgreSQL 15): a connection whose backend started before the change is checked against the password
 * as it was then, so a client must have its token before it connects (src/database/entra-pool.ts does).
 */
export async function setRolePassword (client: Client, role: string, token: string, expiresOnMs: number): Promise<void> {
  await client.query(`ALTER ROLE ${ident(role)} WITH LOGIN PASSWORD ${literal(token)} VALID UNTIL ${literal(new Date(expiresOnMs).toISOString())}`)
}
