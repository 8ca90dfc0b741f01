/**
 * The Redis Cluster hash slot of a key or channel name (CRC16-XMODEM of its hash tag, modulo
 * 16384), as the cluster specification defines it: what tests check names against.
 */

const TABLE = (() => {
  const table = new Uint16Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
    table[byte] = crc & 0xffff;
  }
  return table;
})();

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ (TABLE[((crc >> 8) ^ byte) & 0xff] ?? 0);
  return crc;
}

/** The part of a name that is hashed: its hash tag (`{…}`, when not empty), else all of it. */
export function hashTag(name: string): string {
  const open = name.indexOf('{');
  if (open === -1) return name;
  const close = name.indexOf('}', open + 1);
  return close > open + 1 ? name.slice(open + 1, close) : name;
}

/** The slot (0–16383) a key or sharded channel name belongs to. */
export function clusterSlot(name: string): number {
  return crc16(Buffer.from(hashTag(name))) % 16384;
}
