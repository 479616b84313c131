'use strict';

// Shared by the litefaas Serverless plugins: the bundle (built by the Python packager), the deploy
// plan (the provider commands, written at package time, run at deploy time) and running commands.

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const PLAN_FILE = (cloud) => `litefaas-${cloud}-plan.json`;

// What a private key looks like, in a PEM file or in a litefaas key set: never in a command line.
const PRIVATE_KEY_PATTERNS = [
  /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----/,
  /private_key\\?["']?\s*[:=]\s*\\?["']?[A-Za-z0-9_-]{40,}/,
];

function pythonExecutable(serviceDir) {
  if (process.env.LITEFAAS_PYTHON) return process.env.LITEFAAS_PYTHON;
  const candidates = [];
  if (process.env.VIRTUAL_ENV) candidates.push(path.join(process.env.VIRTUAL_ENV, 'bin', 'python'));
  candidates.push(path.join(serviceDir, '.venv', 'bin', 'python'));
  return candidates.find((candidate) => fs.existsSync(candidate)) || 'python3';
}

function which(tool, searchPath = process.env.PATH || '') {
  for (const dir of searchPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, tool);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

function packagePath(serverless, options) {
  return path.resolve(
    serverless.serviceDir,
    options.package || serverless.service.package.path || '.serverless'
  );
}

function target(serverless) {
  const { provider } = serverless.service;
  const python = String(provider.runtime || 'python3.12').replace(/^python/, '');
  return { python, arch: provider.architecture || 'x86_64' };
}

function artifactPath(serverless) {
  const artifact = serverless.service.package && serverless.service.package.artifact;
  if (!artifact) throw new serverless.classes.Error('serverless.yml names no package.artifact');
  return path.resolve(serverless.serviceDir, artifact);
}

// Build the bundle serverless.yml names with `litefaas package` (and `extra` arguments), unless
// LITEFAAS_BUNDLE says that exact file was just built (by `litefaas deploy`).
function ensureBundle(serverless, cloud, log, extra = []) {
  const artifact = artifactPath(serverless);
  const ready = process.env.LITEFAAS_BUNDLE && path.resolve(process.env.LITEFAAS_BUNDLE);
  if (ready === artifact && fs.existsSync(artifact)) return artifact;
  const { python, arch } = target(serverless);
  const argv = [
    '-m',
    'litefaas.cli.package',
    'package',
    '--cloud',
    cloud,
    '--arch',
    arch,
    '--python',
    python,
    '--out',
    path.dirname(artifact),
    ...extra,
  ];
  const executable = pythonExecutable(serverless.serviceDir);
  log.notice(`Building the ${cloud} bundle: ${[path.basename(executable), ...argv].join(' ')}`);
  const result = spawnSync(executable, argv, { cwd: serverless.serviceDir, stdio: 'inherit' });
  if (result.error || result.status !== 0) {
    const reason = result.error ? result.error.message : `exit code ${result.status}`;
    throw new serverless.classes.Error(`litefaas package failed (${reason})`, 'LITEFAAS_PACKAGE_FAILED');
  }
  if (!fs.existsSync(artifact)) {
    throw new serverless.classes.Error(
      `litefaas package did not write ${path.relative(serverless.serviceDir, artifact)}`,
      'LITEFAAS_PACKAGE_MISSING'
    );
  }
  return artifact;
}

// Extract the bundle into a folder (for tools that deploy a folder), with the packager's safe unzip.
function unpackBundle(serverless, bundle, destination) {
  fs.rmSync(destination, { recursive: true, force: true });
  const code = 'import sys; from pathlib import Path; from litefaas.packaging.bundle import unpack; unpack(Path(sys.argv[1]), Path(sys.argv[2]))';
  const result = spawnSync(pythonExecutable(serverless.serviceDir), ['-c', code, bundle, destination], {
    cwd: serverless.serviceDir,
    stdio: 'inherit',
  });
  if (result.error || result.status !== 0) {
    throw new serverless.classes.Error(`could not unpack ${bundle}`, 'LITEFAAS_UNPACK_FAILED');
  }
}

function refuseSecrets(serverless, commands) {
  for (const command of commands) {
    for (const arg of command.argv) {
      if (PRIVATE_KEY_PATTERNS.some((pattern) => pattern.test(arg))) {
        throw new serverless.classes.Error(
          `refusing to deploy: a private key appears in the ${command.argv[0]} command. Keep private keys ` +
            'in the secret store and pass only its reference (privateKeysSecret)',
          'LITEFAAS_PRIVATE_KEY_IN_PLAN'
        );
      }
    }
  }
}

function writePlan(serverless, options, commands) {
  refuseSecrets(serverless, commands);
  const plan = { cloud: serverless.service.provider.name, ...planScope(serverless, options), commands };
  const folder = packagePath(serverless, options);
  fs.mkdirSync(folder, { recursive: true });
  const file = path.join(folder, PLAN_FILE(plan.cloud));
  fs.writeFileSync(`${file}.partial`, `${JSON.stringify(plan, null, 2)}\n`);
  fs.renameSync(`${file}.partial`, file);
  return file;
}

function planScope(serverless, options) {
  const { provider } = serverless.service;
  return { service: serverless.service.service, stage: provider.stage, region: options.region || provider.region };
}

function readPlan(serverless, options, cloud) {
  const file = path.join(packagePath(serverless, options), PLAN_FILE(cloud));
  let plan;
  try {
    plan = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new serverless.classes.Error(
      `no deploy plan at ${file} (${error.code || error.message}): run the package step first`,
      'LITEFAAS_NO_PLAN'
    );
  }
  const scope = planScope(serverless, options);
  for (const [name, value] of Object.entries(scope)) {
    if (plan[name] !== value) {
      throw new serverless.classes.Error(
        `the plan in ${file} is for ${name} ${plan[name]}, not ${value}: package again`,
        'LITEFAAS_PLAN_MISMATCH'
      );
    }
  }
  return plan;
}

// Run each command in order; stop at the first failure. Every tool must be on PATH first.
function runPlan(serverless, plan, log, installHints) {
  refuseSecrets(serverless, plan.commands);
  const tools = [...new Set(plan.commands.map((command) => command.argv[0]))];
  const missing = tools.filter((tool) => !which(tool));
  if (missing.length) {
    const hints = missing.map((tool) => `${tool} (${installHints[tool] || 'install it'})`).join(', ');
    throw new serverless.classes.Error(
      `cannot deploy to ${plan.cloud}: not on PATH: ${hints}`,
      'LITEFAAS_TOOL_MISSING'
    );
  }
  for (const command of plan.commands) {
    const cwd = command.cwd || serverless.serviceDir;
    log.notice(`$ ${command.argv.join(' ')}${command.cwd ? `  (in ${command.cwd})` : ''}`);
    const result = spawnSync(which(command.argv[0]), command.argv.slice(1), { cwd, stdio: 'inherit' });
    if (result.error || result.status !== 0) {
      const reason = result.error ? result.error.message : `exit code ${result.status}`;
      throw new serverless.classes.Error(
        `${command.argv.slice(0, 3).join(' ')} failed (${reason})`,
        'LITEFAAS_DEPLOY_FAILED'
      );
    }
  }
}

function nonEmpty(environment) {
  return Object.entries(environment || {})
    .filter(([, value]) => value !== undefined && value !== null && String(value) !== '')
    .map(([name, value]) => [name, String(value)]);
}

// Properties serverless.yml gives every provider; the gcp and azure plugins declare them.
const NUMBER = { anyOf: [{ type: 'integer' }, { type: 'string', pattern: '^[0-9]+$' }] };
const PROVIDER_SCHEMA = {
  properties: {
    runtime: { type: 'string', pattern: '^python3\\.1[2-9]$' },
    architecture: { enum: ['x86_64', 'arm64'] },
    region: { type: 'string' },
    memorySize: NUMBER,
    timeout: NUMBER,
    environment: { type: 'object', additionalProperties: { type: 'string' } },
    logRetentionInDays: NUMBER,
  },
};
const FUNCTION_SCHEMA = { properties: { handler: { type: 'string' } } };

// What the gcp and azure plugins share: the provider registration, `deploy --region`, the hooks
// (bundle before packaging, the deploy plan when packaging ends, the plan run at deploy) and the
// private keys' secret reference. A subclass gives `plan()` and calls `super(..., cloud, hints)`.
class CloudPlugin {
  constructor(serverless, options, { log }, cloud, installHints) {
    this.serverless = serverless;
    this.options = options;
    this.log = log;
    this.provider = cloud;
    this.cloud = cloud;
    serverless.setProvider(cloud, this);
    serverless.configSchemaHandler.defineProvider(cloud, {
      provider: PROVIDER_SCHEMA,
      function: FUNCTION_SCHEMA,
    });
    // `deploy --region` as `package --region`: the plan is made at package time, where it counts
    this.commands = {
      deploy: { options: { region: { usage: 'Region of the service', shortcut: 'r', type: 'string' } } },
    };
    this.hooks = {
      'before:package:createDeploymentArtifacts': () => this.bundle(),
      'package:finalize': () => this.plan(),
      'deploy:deploy': () => runPlan(serverless, readPlan(serverless, options, cloud), log, installHints),
    };
  }

  bundle() {
    this.bundlePath = ensureBundle(this.serverless, this.cloud, this.log, this.bundleArguments());
  }

  // What `litefaas package` is given beyond the target (a subclass adds its own).
  bundleArguments() {
    return [];
  }

  // The provider's environment as [name, value] pairs, and the private keys' reference, which must
  // match `pattern`: a secret store reference, never a key.
  environmentWithSecret(pattern, message, code) {
    const environment = nonEmpty(this.serverless.service.provider.environment);
    const secret = environment.find(([name]) => name === 'LITEFAAS_PRIVATE_KEYS');
    if (!secret || !pattern.test(secret[1])) {
      throw new this.serverless.classes.Error(message, code);
    }
    return { environment, secret: secret[1] };
  }

  settings() {
    const { custom } = this.serverless.service;
    return (custom && custom.litefaas) || {};
  }
}

module.exports = {
  CloudPlugin,
  PROVIDER_SCHEMA,
  FUNCTION_SCHEMA,
  artifactPath,
  ensureBundle,
  nonEmpty,
  packagePath,
  readPlan,
  runPlan,
  target,
  unpackBundle,
  which,
  writePlan,
};
