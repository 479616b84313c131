'use strict';

// litefaas on AWS: `package` builds the Lambda bundle that serverless.yml names as package.artifact
// (cp312 manylinux wheels for the function's architecture, see litefaas/packaging/) before osls
// compiles the template. `offline start` serves the sources with the local Python instead: the
// bundle's wheels are for Lambda, and the private keys come from the local environment there,
// not from the Secrets Manager reference CloudFormation resolves at deploy.

const { ensureBundle } = require('./common');

class LitefaasAws {
  constructor(serverless, options, { log }) {
    this.serverless = serverless;
    this.options = options;
    this.log = log;
    this.provider = 'aws';
    this.hooks = {
      'before:package:createDeploymentArtifacts': () => this.bundle(),
      'before:offline:start': () => this.serveSources(),
      'before:offline:start:init': () => this.serveSources(),
    };
  }

  bundle() {
    ensureBundle(this.serverless, 'aws', this.log);
  }

  serveSources() {
    const { service } = this.serverless;
    if (service.package) delete service.package.artifact;
    const environment = service.provider.environment || {};
    if (String(environment.LITEFAAS_PRIVATE_KEYS || '').startsWith('{{resolve:')) {
      delete environment.LITEFAAS_PRIVATE_KEYS;
    }
  }
}

module.exports = LitefaasAws;
