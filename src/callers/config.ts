// Caller authentication's configuration (AUTH_MODE and what each mode needs).
import type { Config } from '../config.ts'

export type CallersConfig = Config['auth']
