// Who is calling, as every part of the service sees it, whatever proved it (Entra token, API key, nothing).
import { ForbiddenError } from '../errors.ts'

/** What a caller may do; resolvers check them per field. */
export type Role = 'Identify' | 'ReadAll' | 'Admin'

export interface Caller {
  /** How the caller proved who it is. */
  kind: 'entra-user' | 'entra-app' | 'apikey' | 'anonymous'
  /** A stable id for logs, rate limits and slots: the Entra oid/appid, or the API key's id. Never a secret. */
  id: string
  roles: ReadonlySet<Role>
  /** Entra: the tenant the token was issued by (`tid`). */
  tenantId?: string
  /** Entra user tokens: the delegated permissions (`scp`). */
  scopes?: readonly string[]
  /** Entra: the app roles (`roles`) as the token lists them. */
  appRoles?: readonly string[]
  /** A display name (the user's or app's name, the API key's id). Not logged: it may be personal data. */
  name?: string
  /** Entra: when the token stops being valid (`exp`); a long-lived connection (a subscription) ends then. */
  expiresAt?: Date
}

/** Our roles by the Entra app role (or delegated permission) names that grant them; API key entries use the same names. */
export const ROLE_BY_ENTRA_NAME: ReadonlyMap<string, Role> = new Map<string, Role>([
  ['VehicleIdentification.Identify', 'Identify'],
  ['VehicleIdentification.ReadAll', 'ReadAll'],
  ['VehicleIdentification.Admin', 'Admin']
])

/** Everyone, when AUTH_MODE=none: may identify, nothing more. */
export const ANONYMOUS: Caller = Object.freeze({ kind: 'anonymous', id: 'anonymous', roles: new Set<Role>(['Identify']) })

export function requireRole (caller: Caller, role: Role): void {
  if (!caller.roles.has(role)) throw new ForbiddenError(`This needs the ${role} role, which the caller does not have.`)
}
