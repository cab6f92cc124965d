/** `softphone-backend spaces list|add|set-expiry|remove` (README "Spaces"). */
import { DOMAIN_RULE, INSTANT_RULE, isoOf, normalizeDomain, parseInstant } from '../spaces/space-input'
import type { SpaceRow } from '../spaces/space-store'
import { SpaceService } from '../spaces/spaces'
import { UsageError, type ParsedArgs } from './args'
import type { CommandContext, StoreCommand } from './store-command'

export const SPACES_OPTIONS = ['expires'] as const

export const SPACES_HELP = `softphone-backend spaces <command>
  list                                     domain, expiry (or never), expired or active, users
  add <domain> [--expires <ISO>]           a new space, by default never expiring
  set-expiry <domain> <ISO|never>          users of an expired space are refused (403 space_expired)
  remove <domain>                          only a space without users; the default space stays
Dates are ISO 8601: 2027-01-31 (midnight UTC) or 2027-01-31T18:00:00+03:00.
Users join a space with users add --space, or move with users move <ext> --space <domain>.
A running server picks the change up within a second.`

/** Checks the whole command line before anything is opened: a usage error touches no file. */
export function parseSpacesCommand(args: ParsedArgs): StoreCommand {
  const [, command, domainText, expiryText] = args.positionals
  const needDomain = (): string => {
    const domain = domainText === undefined ? null : normalizeDomain(domainText)
    if (domain === null) throw new UsageError(`give a domain: ${DOMAIN_RULE}`)
    return domain
  }
  switch (command) {
    case 'list':
      return { access: 'read', run: async (context) => listSpaces(context) }
    case 'add': {
      const domain = needDomain()
      const expires = args.options.get('expires')
      const expireAt = expires === undefined ? null : expiryOf(expires, '--expires')
      return { access: 'create', run: async (context) => addSpace(context, domain, expireAt) }
    }
    case 'set-expiry': {
      const domain = needDomain()
      if (expiryText === undefined) throw new UsageError(`give the expiry: ${INSTANT_RULE}, or never`)
      const expireAt = expiryText === 'never' ? null : expiryOf(expiryText, 'the expiry')
      return { access: 'write', run: async (context) => setExpiry(context, domain, expireAt) }
    }
    case 'remove': {
      const domain = needDomain()
      return { access: 'write', run: async (context) => removeSpace(context, domain) }
    }
    default:
      throw new UsageError(SPACES_HELP)
  }
}

function expiryOf(text: string, what: string): number {
  const seconds = parseInstant(text)
  if (seconds === null) throw new UsageError(`${what} must be ${INSTANT_RULE}`)
  return seconds
}

const spacesOf = (context: CommandContext) => new SpaceService(context.db, context.clock)
const expiryText = (space: SpaceRow) => (space.expire_at === null ? 'never' : isoOf(space.expire_at))
const describe = (space: SpaceRow) => `space ${space.domain} ${space.expire_at === null ? 'never expires' : `expires ${isoOf(space.expire_at)}`}`

function listSpaces(context: CommandContext): void {
  const spaces = spacesOf(context)
  for (const space of spaces.list()) {
    console.log([space.domain, expiryText(space), spaces.isExpired(space) ? 'expired' : 'active', `${space.users} users`].join('\t'))
  }
}

function addSpace(context: CommandContext, domain: string, expireAt: number | null): void {
  const space = spacesOf(context).add(domain, expireAt)
  context.audit('SPACE_ADDED', undefined, describe(space))
  console.log(`added ${describe(space)}`)
}

function setExpiry(context: CommandContext, domain: string, expireAt: number | null): void {
  const space = spacesOf(context).setExpiry(domain, expireAt)
  context.audit('SPACE_EXPIRY_CHANGED', undefined, describe(space))
  console.log(describe(space))
}

function removeSpace(context: CommandContext, domain: string): void {
  spacesOf(context).remove(domain)
  context.audit('SPACE_REMOVED', undefined, `space ${domain}`)
  console.log(`removed space ${domain}`)
}
