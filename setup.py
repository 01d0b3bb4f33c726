# SPDX-License-Identifier: GPL-3.0-or-later
"""Packaging for autopkgtest-web (the ``webcontrol`` package)."""

from pathlib import Path

from setuptools import find_packages, setup

PROGRAMS = {
    "download-results": "download_results",
    "download-all-results": "download_all_results",
    "publish-db": "publish_db",
    "cache-amqp": "cache_amqp",
    "amqp-status-collector": "amqp_status_collector",
    "update-github-jobs": "update_github_jobs",
    "autopkgtest-stats": "stats",
    "cache-ppa-containers": "cache_ppa_containers",
    "db-backup": "db_backup",
    "autopkgtest-web-demo": "demo",
    "index-failures": "index_failures",
}


def package_files() -> list[str]:
    """Every non-Python file of the package (templates, static files, WSGI .cgi files)."""
    root = Path(__file__).parent / "webcontrol"
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    )


setup(
    name="autopkgtest-web",
    version="0.1.0",
    description="Web front end and services of an autopkgtest infrastructure",
    long_description=open("README.rst", encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    license="GPL-3.0-or-later",
    python_requires=">=3.10",
    packages=find_packages(include=["webcontrol", "webcontrol.*"]),
    include_package_data=True,
    package_data={"webcontrol": package_files()},
    install_requires=[
        "flask>=2.2",
        "pika>=1.3",
        "python-swiftclient>=4.0",
        "distro-info>=1.0",
        "python3-openid>=3.2",
        "python-debian>=0.1.44",
        "zstandard>=0.19",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "hypothesis>=6",
            "schemathesis>=4.0",
            "prometheus_client>=0.16",
            "ops>=2.10",
            "PyYAML>=6",
            "ruff>=0.4",
            "wheel",
        ],
    },
    entry_points={
        "console_scripts": [f"{name}=webcontrol.services.{module}:main" for name, module in PROGRAMS.items()]
    },
    classifiers=[
        "License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
    ],
)
