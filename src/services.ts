/** The stateful services over one state store, composed the same way for the server and the tests. */
import { PasswordLogin } from './auth/password-login'
import type { Clock } from './clock'
import type { Directory } from './directory/directory'
import { SessionService, type RotationMode } from './sessions/sessions'
import type { StateStore } from './store/state-store'
import { KeyRing } from './tokens/key-ring'
import { TokenService, type TokenSettings } from './tokens/tokens'

export interface ServiceSettings extends TokenSettings {
  rotation: RotationMode
  /** Password checks that may run at once; further logins queue. */
  passwordConcurrency: number
}

/** `keys`: the key ring, or a single key that signs and verifies tokens without a kid. */
export function createServices(store: StateStore, keys: KeyRing | Uint8Array, clock: Clock, directory: Directory, settings: ServiceSettings) {
  const tokens = new TokenService(keys instanceof KeyRing ? keys : new KeyRing(keys), clock, store.revocations, settings)
  const sessions = new SessionService(store.sessions, tokens, clock, settings.rotation)
  const logins = new PasswordLogin(directory, store.throttle, settings.passwordConcurrency)
  return { revocations: store.revocations, sessionRecords: store.sessions, tokens, sessions, throttle: store.throttle, logins }
}

export type Services = ReturnType<typeof createServices>
