/** What an HTTP Digest client does (RFC 7616 §3.4, qop=auth), as curl computes it; for tests. */
import { digestHa1, digestResponse, type DigestAlgorithm } from '../src/auth/digest'

export interface DigestAnswer {
  username: string
  password: string
  uri: string
  method: string
  nc?: string
  cnonce?: string
}

/** The `WWW-Authenticate` field split into its challenges (Bun joins them with ", "). */
export function challengesOf(response: Response): string[] {
  return (response.headers.get('www-authenticate') ?? '').split(/, (?=Digest )/).filter(Boolean)
}

export const challengeField = (challenge: string, name: string) => challenge.match(new RegExp(`${name}="?([^",]+)"?`))![1]!

/** The `Authorization` header answering `challenge`. */
export function digestAuthorization(challenge: string, answer: DigestAnswer): string {
  const algorithm = challengeField(challenge, 'algorithm') as DigestAlgorithm
  const realm = challengeField(challenge, 'realm')
  const nonce = challengeField(challenge, 'nonce')
  const { username, uri, nc = '00000001', cnonce = 'Y2xpZW50LW5vbmNl' } = answer
  const ha1 = digestHa1(algorithm, username, realm, answer.password)
  const response = digestResponse(algorithm, ha1, { method: answer.method, uri, nonce, nc, cnonce })
  return `Digest username="${username}", realm="${realm}", uri="${uri}", algorithm=${algorithm}, nonce="${nonce}", nc=${nc}, cnonce="${cnonce}", qop=auth, response="${response}", opaque="${challengeField(challenge, 'opaque')}"`
}
