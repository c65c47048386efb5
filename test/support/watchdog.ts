// Preloaded into the server child (`node --import ./test/support/watchdog.ts src/server.ts`) so that it
// can never outlive the test that started it: it exits when its parent (the test process) is gone, whatever
// killed it (tap's timeout, SIGKILL, a crash), and after a hard deadline. Test-only; the timer is
// unref'd, so it changes nothing in the server's own shutdown.
const parent = process.ppid
const deadline = Date.now() + Number(process.env.TEST_MAX_LIFETIME_MS ?? 300_000)

const timer = setInterval(() => {
  if (process.ppid !== parent) {
    process.stderr.write('test watchdog: parent gone, exiting\n')
    process.kill(process.pid, 'SIGKILL')
  }
  if (Date.now() > deadline) {
    process.stderr.write('test watchdog: lifetime exceeded, exiting\n')
    process.kill(process.pid, 'SIGKILL')
  }
}, 250)
timer.unref()

export {}
