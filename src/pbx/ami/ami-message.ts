import type { AmiMessage } from './ami-link'

/** An AMI message as its ordered fields: what the parser (ami-parser.ts) builds, and tests. */
export class FieldsMessage implements AmiMessage {
  constructor(readonly fields: ReadonlyArray<readonly [key: string, value: string]>) {}

  get(key: string): string | undefined {
    const exact = this.fields.find(([name]) => name === key)
    if (exact) return exact[1]
    const lower = key.toLowerCase()
    return this.fields.find(([name]) => name.toLowerCase() === lower)?.[1]
  }

  all(key: string): string[] {
    const lower = key.toLowerCase()
    return this.fields.filter(([name]) => name.toLowerCase() === lower).map(([, value]) => value)
  }
}

export function amiMessage(fields: Readonly<Record<string, string>> | ReadonlyArray<readonly [string, string]>): AmiMessage {
  return new FieldsMessage(Array.isArray(fields) ? fields : Object.entries(fields))
}
