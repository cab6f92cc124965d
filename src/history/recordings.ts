/**
 * Where a CDR's recording is served (README "Call history"): nginx serves MikoPBX's monitor
 * directory under the recordings prefix, guarded by check-media-access.
 */
export const MONITOR_DIR = '/storage/usbdisk1/mikopbx/astspool/monitor/'
export const RECORDINGS_URL_PREFIX = '/pbxcore/softphone/recordings/'

/**
 * The path of a `recordingfile` below the monitor directory, or null when it is empty, lies
 * elsewhere or climbs out with `..`: such a file is never offered as a URL.
 */
export function recordingRelativePath(recordingFile: string | null | undefined): string | null {
  if (!recordingFile?.startsWith(MONITOR_DIR)) return null
  const relative = recordingFile.slice(MONITOR_DIR.length)
  const segments = relative.split('/')
  if (relative === '' || segments.some((segment) => segment === '' || segment === '.' || segment === '..')) return null
  return relative
}

/** The URL path a client fetches a leg's recording from, or null when the leg has none. */
export function recordingUrl(recordingFile: string | null | undefined): string | null {
  const relative = recordingRelativePath(recordingFile)
  return relative === null ? null : RECORDINGS_URL_PREFIX + relative.split('/').map(encodeURIComponent).join('/')
}
