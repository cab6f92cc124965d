/**
 * Which user a dialed number belongs to through the directory's `mobile` field: a leg dialed to a
 * user's mobile is listed under that user (README "Presence snapshots, schema version 2").
 */
import type { Clock } from '../clock'
import type { DirectoryUser } from '../directory/directory'

/** How long the mobile numbers' index is used before the directory is listed again. */
const MOBILE_INDEX_MS = 30_000

/** Mobiles shorter than this would match too many dialed numbers' tails. */
const MIN_MOBILE_DIGITS = 5

/**
 * The user whose directory `mobile` (up to 10 digits) a dialed number ends with, so `8 916 123-45-67`
 * and `+79161234567` both find the user whose mobile is `9161234567`; null for anything else.
 */
export function mobileOwners(listUsers: () => DirectoryUser[], clock: Clock): (number: string) => string | null {
  let byMobile = new Map<string, string>()
  let lengths: number[] = []
  let builtAt = -Infinity
  const rebuild = () => {
    byMobile = new Map(listUsers().flatMap((user): Array<[string, string]> => (user.mobile.length >= MIN_MOBILE_DIGITS && !user.disabled ? [[user.mobile, user.username]] : [])))
    lengths = [...new Set([...byMobile.keys()].map((mobile) => mobile.length))]
    builtAt = clock.now()
  }
  return (number) => {
    if (clock.now() - builtAt > MOBILE_INDEX_MS) rebuild()
    const digits = number.replace(/\D/g, '')
    for (const length of lengths) {
      const owner = digits.length >= length ? byMobile.get(digits.slice(-length)) : undefined
      if (owner !== undefined) return owner
    }
    return null
  }
}
