#!/usr/bin/env node
// The manifest `npm pack` ships. package.json describes the whole system (its servers need
// Fastify, BullMQ, PGlite…), but the package ships only the client, the contract, the React hook
// and the CLI, built in dist/: their users must not install a server's dependencies. So
// `prepack` swaps in a manifest whose dependencies are exactly the packages dist/ imports (each
// with the range package.json gives it), without scripts or devDependencies, and `postpack`
// puts package.json back byte for byte.
//
//   node scripts/pack-manifest.mjs write     (prepack, after the build)
//   node scripts/pack-manifest.mjs restore   (postpack)
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const manifestPath = path.join(root, 'package.json');
const backupPath = path.join(root, 'node_modules/.cache/triton-events-pack/package.json');

/** Puts package.json back if a pack left it swapped (one that died before postpack, say). */
function restore() {
  if (!existsSync(backupPath)) return false;
  copyFileSync(backupPath, manifestPath);
  rmSync(backupPath);
  return true;
}

function jsFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return jsFiles(full);
    return entry.name.endsWith('.js') ? [full] : [];
  });
}

/** The packages a module imports (static and dynamic), by package name. */
function importedPackages(file) {
  const text = readFileSync(file, 'utf8');
  const names = new Set();
  for (const [, spec] of text.matchAll(
    /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"]([^'"]+)['"]/g,
  )) {
    if (spec.startsWith('.') || spec.startsWith('node:') || spec.startsWith('/')) continue;
    const parts = spec.split('/');
    names.add(spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]);
  }
  return names;
}

function write() {
  restore();
  const original = readFileSync(manifestPath, 'utf8');
  const pkg = JSON.parse(original);
  const dist = path.join(root, 'dist');
  if (!existsSync(dist))
    throw new Error('pack-manifest: dist/ is missing: run `npm run build` first');

  const dependencies = {};
  const peers = pkg.peerDependencies ?? {};
  for (const file of jsFiles(dist)) {
    for (const name of importedPackages(file)) {
      if (name in peers) continue;
      const range = pkg.dependencies?.[name];
      if (!range) {
        throw new Error(
          `pack-manifest: ${path.relative(root, file)} imports ${name}, which package.json does not list in dependencies or peerDependencies`,
        );
      }
      dependencies[name] = range;
    }
  }
  const sorted = Object.fromEntries(
    Object.entries(dependencies).sort(([a], [b]) => a.localeCompare(b)),
  );

  const shipped = {};
  for (const key of [
    'name',
    'version',
    'private',
    'description',
    'license',
    'type',
    'engines',
    'exports',
    'bin',
    'files',
  ]) {
    if (pkg[key] !== undefined) shipped[key] = pkg[key];
  }
  // What dist/ holds only declares things: bundlers may drop any module a user does not use.
  shipped.sideEffects = false;
  shipped.dependencies = sorted;
  if (pkg.peerDependencies) shipped.peerDependencies = pkg.peerDependencies;
  if (pkg.peerDependenciesMeta) shipped.peerDependenciesMeta = pkg.peerDependenciesMeta;

  mkdirSync(path.dirname(backupPath), { recursive: true });
  writeFileSync(backupPath, original);
  writeFileSync(manifestPath, `${JSON.stringify(shipped, null, 2)}\n`);
}

const command = process.argv[2];
if (command === 'write') write();
else if (command === 'restore') restore();
else {
  console.error('usage: pack-manifest.mjs write|restore');
  process.exitCode = 2;
}
