import re

from setuptools import find_packages, setup

with open("requirements.txt") as f:
    requirements = [line.strip() for line in f if line.strip() and not line.startswith("#")]
with open("README.md") as f:
    readme = f.read()
with open("genisys/version.py") as f:
    version = re.search(r'__version__ = "([^"]+)"', f.read()).group(1)

setup(
    name="genisys",
    version=version,
    description="Compute resource management as a reconciling controller",
    long_description=readme,
    long_description_content_type="text/markdown",
    packages=find_packages(include=["genisys", "genisys.*"]),
    python_requires=">=3.9",
    install_requires=requirements,
    entry_points={"console_scripts": ["genisys = genisys.cli:main"]},
)
