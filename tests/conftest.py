# SPDX-License-Identifier: GPL-3.0-or-later
pytest_plugins = ["tests.services.amqp", "tests.services.swift"]
