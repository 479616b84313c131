'use strict';

// litefaas on Google Cloud: Cloud Run functions (gen2) from source, without the retired
// serverless-google-cloudfunctions plugin (it deploys through Deployment Manager, shut down in 2026).
//
// package: builds the source bundle serverless.yml names (main.py at the root, numpy, LiteRT and
//          cryptography vendored beside it, requirements.txt naming functions-framework), unpacks it
//          for gcloud (which deploys a folder) and writes the deploy plan next to it.
// deploy:  runs the plan: `gcloud functions deploy --gen2 --runtime python312 ...`, the private keys
//          mounted from Secret Manager with --set-secrets (the runtime service account needs
//          roles/secretmanager.secretAccessor on the secret).

const path = require('path');
const {
  CloudPlugin,
  packagePath,
  target,
  unpackBundle,
  writePlan,
} = require('./common');

const SECRET_REFERENCE = /^(?:projects\/[^/]+\/secrets\/)?[A-Za-z0-9_-]{1,255}:(?:latest|[0-9]+)$/;
const INSTALL_HINTS = { gcloud: 'the Google Cloud CLI: https://cloud.google.com/sdk/docs/install' };

class LitefaasGcp extends CloudPlugin {
  static getProviderName() {
    return 'gcp';
  }

  constructor(serverless, options, context) {
    super(serverless, options, context, 'gcp', INSTALL_HINTS);
  }

  plan() {
    const { service } = this.serverless;
    const { provider } = service;
    const settings = this.settings();
    const { environment, secret } = this.environmentWithSecret(
      SECRET_REFERENCE,
      'LITEFAAS_PRIVATE_KEYS must be a Secret Manager reference (SECRET:VERSION); set privateKeysSecret',
      'LITEFAAS_GCP_SECRET'
    );
    const server = settings.server || 'asgi';
    if (!['asgi', 'wsgi'].includes(server)) {
      throw new this.serverless.classes.Error(`gcpServer must be asgi or wsgi, not ${server}`, 'LITEFAAS_GCP_SERVER');
    }
    const boost = String(settings.startupCpuBoost || 'false');
    if (!['true', 'false'].includes(boost)) {
      throw new this.serverless.classes.Error(`startupCpuBoost must be true or false, not ${boost}`, 'LITEFAAS_GCP_BOOST');
    }
    const variables = environment.filter(([name]) => name !== 'LITEFAAS_PRIVATE_KEYS');
    if (server === 'asgi') variables.push(['FUNCTION_USE_ASGI', 'true']);
    // Newer runtimes set no project variable: the request lines name the trace as projects/ID/traces/T.
    if (settings.project) variables.push(['GOOGLE_CLOUD_PROJECT', settings.project]);
    const pairs = variables.map(([name, value]) => `${name}=${value}`);
    const delimiter = pairs.some((pair) => pair.includes(',')) ? '^|^' : '';
    const source = path.join(packagePath(this.serverless, this.options), 'source');
    unpackBundle(this.serverless, this.bundlePath, source);
    const { python } = target(this.serverless);
    const argv = [
      'gcloud',
      'functions',
      'deploy',
      `${service.service}-${provider.stage}-predict`,
      '--gen2',
      `--runtime=python${python.replace('.', '')}`,
      `--region=${this.options.region || provider.region}`,
      `--source=${source}`,
      `--entry-point=${service.functions.predict.handler}`,
      '--trigger-http',
      '--allow-unauthenticated',
      `--memory=${provider.memorySize}Mi`,
      `--timeout=${provider.timeout}s`,
      `--min-instances=${settings.minInstances}`,
      `--max-instances=${settings.maxInstances}`,
      `--concurrency=${settings.concurrency}`,
    ];
    if (settings.cpu) argv.push(`--cpu=${settings.cpu}`);
    if (settings.serviceAccount) argv.push(`--service-account=${settings.serviceAccount}`);
    argv.push(`--set-secrets=LITEFAAS_PRIVATE_KEYS=${secret}`);
    if (pairs.length) argv.push(`--set-env-vars=${delimiter}${pairs.join(delimiter ? '|' : ',')}`);
    if (settings.project) argv.push(`--project=${settings.project}`);
    argv.push('--quiet');
    const commands = [{ argv, cwd: null }];
    if (boost === 'true') {
      // A gen2 function is a Cloud Run service of the same name: startup CPU boost is set on it.
      const update = ['gcloud', 'run', 'services', 'update', argv[3], `--region=${this.options.region || provider.region}`, '--cpu-boost'];
      if (settings.project) update.push(`--project=${settings.project}`);
      update.push('--quiet');
      commands.push({ argv: update, cwd: null });
    }
    const file = writePlan(this.serverless, this.options, commands);
    this.log.notice(`Deploy plan written to ${file}`);
  }
}

module.exports = LitefaasGcp;
