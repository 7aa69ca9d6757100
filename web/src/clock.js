// The server's clock, as estimated from the WebSocket: countdowns count to `ends_at` on it, not on
// the browser's clock (which may be minutes off).

const samples = []; // {offset, rtt} from pings, best (lowest round trip) wins
let roughOffset = null; // from a server_time without a round trip (welcome, snapshot)

/** A ping answered: offset = server_time − (sent + received) / 2. */
export function addPingSample(serverTime, sentAt, receivedAt) {
  const server = Date.parse(serverTime);
  if (Number.isNaN(server)) return;
  samples.push({ offset: server - (sentAt + receivedAt) / 2, rtt: receivedAt - sentAt });
  if (samples.length > 8) samples.shift();
}

/** A server_time seen without a round trip: used only until a ping has been answered. */
export function addRoughSample(serverTime) {
  const server = Date.parse(serverTime);
  if (!Number.isNaN(server)) roughOffset = server - Date.now();
}

export function hasPingSample() {
  return samples.length > 0;
}

export function offsetMs() {
  if (samples.length) {
    return samples.reduce((best, sample) => (sample.rtt < best.rtt ? sample : best)).offset;
  }
  return roughOffset ?? 0;
}

/** Milliseconds since the epoch on the server's clock (estimated). */
export function serverNow() {
  return Date.now() + offsetMs();
}

/** "2d 3h", "1h 05m", "4m 07s", "9s" for a positive duration in milliseconds. */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const days = Math.floor(total / 86400);
  const hours = Math.floor((total % 86400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const two = (n) => String(n).padStart(2, '0');
  if (days > 0) return `${days}d ${hours}h`;
  if (hours > 0) return `${hours}h ${two(minutes)}m`;
  if (minutes > 0) return `${minutes}m ${two(seconds)}s`;
  return `${seconds}s`;
}

/** A local date and time for people ("23 Nov, 14:00"). */
export function formatWhen(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  return date.toLocaleString(undefined, {
    day: 'numeric',
    month: 'short',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
}

/** The time of day for today's moments ("14:03:27"), with the date for older ones. */
export function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  if (date.toDateString() !== new Date().toDateString()) return formatWhen(iso);
  return date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}
