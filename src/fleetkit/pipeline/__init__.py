"""The daily training pipeline (issue 17; docs/pipeline.md): export, ship to a trainer,
train there with `fleet ml train`, hash there, ship back, verify.

It drives training as a subprocess or a remote command and never imports the learning
stack (torch, numpy): the production box that runs it only exports, verifies and activates.
Bots never import it (tests/unit/test_architecture.py).

    pipeline.trainers         the Trainer port, its errors, bounded retries
    pipeline.local_trainer    LocalTrainer: a guarded subprocess on this machine
    pipeline.ssh_trainer      SshTrainer: a host reached with the user's own OpenSSH
    pipeline.trainer_factory  a trainer from the config's `training.trainers`

Importing this package pulls in nothing; the modules are imported by name.
"""
