/** The stateful services over one store, composed the same way for the server and the tests. */
import type { Database } from 'bun:sqlite'
import { PasswordLogin } from './auth/password-login'
import type { Clock } from './clock'
import type { Directory } from './directory/directory'
import { SessionStore } from './sessions/session-store'
import { SessionService, type RotationMode } from './sessions/sessions'
import { LoginThrottle, type ThrottleSettings } from './throttle/login-throttle'
import { KeyRing } from './tokens/key-ring'
import { Revocations } from './tokens/revocations'
import { TokenService, type TokenSettings } from './tokens/tokens'

export interface ServiceSettings extends TokenSettings {
  rotation: RotationMode
  throttle: ThrottleSettings
  /** Password checks that may run at once; further logins queue. */
  passwordConcurrency: number
}

/** `keys`: the key ring, or a single key that signs and verifies tokens without a kid. */
export function createServices(db: Database, keys: KeyRing | Uint8Array, clock: Clock, directory: Directory, settings: ServiceSettings) {
  const revocations = new Revocations(db, clock)
  const sessionStore = new SessionStore(db)
  const tokens = new TokenService(keys instanceof KeyRing ? keys : new KeyRing(keys), clock, revocations, settings)
  const sessions = new SessionService(sessionStore, tokens, revocations, clock, settings.rotation)
  const throttle = new LoginThrottle(db, clock, settings.throttle)
  const logins = new PasswordLogin(directory, throttle, settings.passwordConcurrency)
  return { revocations, sessionStore, tokens, sessions, throttle, logins }
}

export type Services = ReturnType<typeof createServices>
