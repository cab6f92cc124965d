/**
 * What one user may see of the presence snapshots (README "Personalised presence", the scope rules):
 * the rules come from presence_scope_states, presence_scope_calls and presence_groups; a user's scope
 * from those rules and its directory entry. The scope key is a deterministic text of everything the
 * scope depends on, so the feed notices a role or group change by comparing two strings.
 */
import type { Config } from '../../config/schema'
import type { DirectoryUser } from '../../directory/directory'
import { roleAtLeast } from '../../auth/route-access'

export type ScopeReach = 'all' | 'own'

export interface ScopeRules {
  /** Whose names and states a user sees beyond its own, its groups' and its call partners'. */
  states: ScopeReach
  /** Whose call details a user sees beyond its own calls and its groups'. */
  calls: ScopeReach
  /** Groups of extensions that see each other whatever the scopes say. */
  groups: readonly (readonly string[])[]
}

export type ScopeConfig = Pick<Config, 'presence_scope_states' | 'presence_scope_calls' | 'presence_groups'>

export function scopeRules(config: ScopeConfig): ScopeRules {
  return {
    states: config.presence_scope_states,
    calls: config.presence_scope_calls,
    groups: config.presence_groups.map((group) => group.trim().split(/\s+/)),
  }
}

/** Admins see the full snapshot. */
export interface AdminScope {
  admin: true
  key: string
}

export interface UserScope {
  admin: false
  key: string
  /** The user's own extension. */
  extension: string
  /** Extensions sharing a group with the user, itself excluded. */
  mates: ReadonlySet<string>
  /** The user's and its group-mates' mobile numbers: a leg to one of them is their call. */
  mobiles: ReadonlySet<string>
  statesAll: boolean
  callsAll: boolean
}

export type Scope = AdminScope | UserScope

const ADMIN_SCOPE: AdminScope = { admin: true, key: 'admin' }

/** `findUser` looks up group-mates for their mobile numbers. */
export function scopeOf(user: DirectoryUser, rules: ScopeRules, findUser: (username: string) => DirectoryUser | null): Scope {
  if (roleAtLeast(user.role, 'admin')) return ADMIN_SCOPE
  const mates = groupMatesOf(user.username, rules.groups)
  const mobiles = new Set<string>()
  if (user.mobile) mobiles.add(user.mobile)
  for (const mate of mates) {
    const mobile = findUser(mate)?.mobile
    if (mobile) mobiles.add(mobile)
  }
  const key = JSON.stringify([user.username, rules.states, rules.calls, [...mates].sort(), [...mobiles].sort()])
  return { admin: false, key, extension: user.username, mates, mobiles, statesAll: rules.states === 'all', callsAll: rules.calls === 'all' }
}

function groupMatesOf(extension: string, groups: ScopeRules['groups']): Set<string> {
  const mates = new Set<string>()
  for (const group of groups) {
    if (!group.includes(extension)) continue
    for (const member of group) if (member !== extension) mates.add(member)
  }
  return mates
}
