'use strict';

// litefaas on Azure Functions (Python v2 programming model, Flex Consumption), without the retired
// serverless-azure-functions plugin (Python <= 3.8 and Functions runtime 3 only).
//
// package: builds the app bundle serverless.yml names (function_app.py and host.json at the root,
//          numpy, LiteRT and cryptography in .python_packages/lib/site-packages), writes the ARM
//          parameters of providers/azure/main.json from serverless.yml (names, Python, instance memory,
//          maximum instances, per-instance concurrency, always-ready, the function's settings; never a
//          key) and the plan.
// deploy:  runs the plan: the zip, with `az functionapp deployment source config-zip --build-remote
//          false` or, with azurePublisher=func, `func azure functionapp publish --no-build` in the
//          unpacked bundle. `litefaas deploy --cloud azure` first deploys the template (storage, plan,
//          app, Key Vault, identity and roles) and pushes or checks the keys; `osls deploy` alone
//          publishes to what exists.

const path = require('path');
const {
  CloudPlugin,
  packagePath,
  target,
  unpackBundle,
  writePlan,
} = require('./common');

const fs = require('fs');
const PARAMETERS_FILE = 'litefaas-azure-parameters.json';

const KEY_VAULT_REFERENCE = /^@Microsoft\.KeyVault\((?:SecretUri=https:\/\/[^)]+|VaultName=[A-Za-z0-9-]+;SecretName=[A-Za-z0-9-]+(?:;SecretVersion=[A-Za-z0-9]+)?)\)$/;
const INSTALL_HINTS = {
  az: 'the Azure CLI: https://learn.microsoft.com/cli/azure/install-azure-cli',
  func: 'Azure Functions Core Tools: https://learn.microsoft.com/azure/azure-functions/functions-run-local',
};

// serverless.yml's azureAppInsights, a YAML bool or a --param string: true or false, nothing else.
function appInsights(settings, serverless) {
  const value = String(settings.appInsights === undefined ? false : settings.appInsights).trim().toLowerCase();
  if (value !== 'true' && value !== 'false') {
    throw new serverless.classes.Error(
      `azureAppInsights must be true or false, not ${value.slice(0, 16)}`,
      'LITEFAAS_AZURE_APP_INSIGHTS'
    );
  }
  return value === 'true';
}

function hhmmss(seconds) {
  const total = Number(seconds);
  const pad = (value) => String(value).padStart(2, '0');
  return `${pad(Math.floor(total / 3600))}:${pad(Math.floor((total % 3600) / 60))}:${pad(total % 60)}`;
}

class LitefaasAzure extends CloudPlugin {
  static getProviderName() {
    return 'azure';
  }

  constructor(serverless, options, context) {
    super(serverless, options, context, 'azure', INSTALL_HINTS);
  }

  // An Application Insights deploy needs azure-monitor-opentelemetry in the bundle.
  bundleArguments() {
    return appInsights(this.settings(), this.serverless) ? ['--app-insights'] : [];
  }

  plan() {
    const { service } = this.serverless;
    const { provider } = service;
    const settings = this.settings();
    const { environment } = this.environmentWithSecret(
      KEY_VAULT_REFERENCE,
      'LITEFAAS_PRIVATE_KEYS must be a Key Vault reference (@Microsoft.KeyVault(...)); set azureKeyVault and privateKeysSecret',
      'LITEFAAS_AZURE_SECRET'
    );
    if (!['az', 'func'].includes(settings.publisher)) {
      throw new this.serverless.classes.Error(
        `azurePublisher must be az or func, not ${settings.publisher}`,
        'LITEFAAS_AZURE_PUBLISHER'
      );
    }
    const app = ['--resource-group', settings.resourceGroup, '--name', settings.functionApp];
    this.writeParameters(environment, settings);
    const commands = [];
    if (settings.publisher === 'func') {
      const source = path.join(packagePath(this.serverless, this.options), 'source');
      unpackBundle(this.serverless, this.bundlePath, source);
      commands.push({ argv: ['func', 'azure', 'functionapp', 'publish', settings.functionApp, '--no-build'], cwd: source });
    } else {
      commands.push({
        argv: ['az', 'functionapp', 'deployment', 'source', 'config-zip', ...app, '--src', this.bundlePath, '--build-remote', 'false'],
        cwd: null,
      });
    }
    const file = writePlan(this.serverless, this.options, commands);
    this.log.notice(`Deploy plan written to ${file}`);
  }

  // providers/azure/main.json's parameters, as serverless.yml resolved them (an ARM parameters file).
  writeParameters(environment, settings) {
    const { service } = this.serverless;
    const { provider } = service;
    const appSettings = Object.fromEntries(environment.filter(([name]) => name !== 'LITEFAAS_PRIVATE_KEYS'));
    const values = {
      location: this.options.region || provider.region,
      stage: provider.stage,
      functionAppName: settings.functionApp,
      keyVaultName: settings.keyVault,
      privateKeysSecret: settings.privateKeysSecret,
      pythonVersion: target(this.serverless).python,
      instanceMemoryMB: Number(provider.memorySize),
      maximumInstanceCount: Number(settings.maxInstances),
      perInstanceConcurrency: Number(settings.concurrency),
      alwaysReadyInstances: Number(settings.minInstances),
      functionTimeout: hhmmss(provider.timeout),
      appSettings,
      appInsights: appInsights(settings, this.serverless),
    };
    const document = {
      $schema: 'https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#',
      contentVersion: '1.0.0.0',
      parameters: Object.fromEntries(Object.entries(values).map(([name, value]) => [name, { value }])),
    };
    const folder = packagePath(this.serverless, this.options);
    fs.mkdirSync(folder, { recursive: true });
    fs.writeFileSync(path.join(folder, PARAMETERS_FILE), `${JSON.stringify(document, null, 2)}\n`);
  }
}

module.exports = LitefaasAzure;
