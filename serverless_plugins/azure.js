'use strict';

// litefaas on Azure Functions (Python v2 programming model, Flex Consumption), without the retired
// serverless-azure-functions plugin (Python <= 3.8 and Functions runtime 3 only).
//
// package: builds the app bundle serverless.yml names (function_app.py and host.json at the root,
//          numpy, LiteRT and cryptography in .python_packages/lib/site-packages) and writes the plan.
// deploy:  runs the plan with the Azure CLI: app settings (the private keys as a Key Vault reference,
//          which the app's managed identity resolves), scale and concurrency, then the zip, with
//          `az functionapp deployment source config-zip --build-remote false` or, with
//          azurePublisher=func, `func azure functionapp publish --no-build` in the unpacked bundle.
// The function app, its plan and the vault exist already: deploying never creates infrastructure.

const path = require('path');
const {
  CloudPlugin,
  packagePath,
  unpackBundle,
  writePlan,
} = require('./common');

const KEY_VAULT_REFERENCE = /^@Microsoft\.KeyVault\((?:SecretUri=https:\/\/[^)]+|VaultName=[A-Za-z0-9-]+;SecretName=[A-Za-z0-9-]+(?:;SecretVersion=[A-Za-z0-9]+)?)\)$/;
const INSTALL_HINTS = {
  az: 'the Azure CLI: https://learn.microsoft.com/cli/azure/install-azure-cli',
  func: 'Azure Functions Core Tools: https://learn.microsoft.com/azure/azure-functions/functions-run-local',
};

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
    const appSettings = [
      ...environment.map(([name, value]) => `${name}=${value}`),
      `AzureFunctionsJobHost__functionTimeout=${hhmmss(provider.timeout)}`,
    ];
    const commands = [
      ['az', 'functionapp', 'config', 'appsettings', 'set', ...app, '--settings', ...appSettings],
      [
        'az', 'functionapp', 'scale', 'config', 'set', ...app,
        '--instance-memory', String(provider.memorySize),
        '--maximum-instance-count', String(settings.maxInstances),
      ],
      [
        'az', 'functionapp', 'scale', 'config', 'set', ...app,
        '--trigger-type', 'http', '--trigger-settings', `perInstanceConcurrency=${settings.concurrency}`,
      ],
    ].map((argv) => ({ argv, cwd: null }));
    if (Number(settings.minInstances) > 0) {
      commands.push({
        argv: ['az', 'functionapp', 'scale', 'config', 'always-ready', 'set', ...app, '--settings', `http=${settings.minInstances}`],
        cwd: null,
      });
    }
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
}

module.exports = LitefaasAzure;
