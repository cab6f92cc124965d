/** Reads a new password without putting it in argv (visible in ps) or echoing it on a terminal. */
import { UsageError } from './args'

export async function readPassword(fromStdin: boolean): Promise<string> {
  if (fromStdin) return stripOneNewline(await Bun.stdin.text())
  if (!process.stdin.isTTY) throw new UsageError('stdin is not a terminal: pass --password-stdin and pipe the password')
  const first = await promptHidden('Password: ')
  const second = await promptHidden('Repeat password: ')
  if (first !== second) throw new UsageError('the two passwords differ')
  return first
}

async function promptHidden(label: string): Promise<string> {
  process.stdout.write(label)
  Bun.spawnSync(['stty', '-echo'], { stdin: 'inherit' })
  try {
    for await (const line of console) return line
    return ''
  } finally {
    Bun.spawnSync(['stty', 'echo'], { stdin: 'inherit' })
    process.stdout.write('\n')
  }
}

function stripOneNewline(text: string): string {
  return text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text
}
