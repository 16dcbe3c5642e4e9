from setuptools import find_packages, setup

with open("requirements.txt") as f:
    requirements = [line.strip() for line in f if line.strip() and not line.startswith("#")]
with open("README.md") as f:
    readme = f.read()

setup(
    name="genisys",
    version="0.1.0",
    description="Compute resource management as a reconciling controller",
    long_description=readme,
    long_description_content_type="text/markdown",
    packages=find_packages(include=["genisys", "genisys.*"]),
    python_requires=">=3.9",
    install_requires=requirements,
    entry_points={"console_scripts": ["genisys = genisys.cli:main"]},
)
